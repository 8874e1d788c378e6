# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: nginx_exact_regex
short_description: An nginx map key that matches exactly one string, case-sensitively
version_added: 0.1.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Turns a literal string into a case-sensitive regular expression key for an nginx C(map)
    that matches that string and nothing else, such as a subject DN in an allow-list.
  - nginx's C(map) compares plain string keys case-insensitively, so a plain key
    C(CN=admin) would also let C(CN=ADMIN) through, and it reads a key that begins with C(~) as
    a regular expression. A case-sensitive regex key avoids both.
  - "The result is C(~^), the string, then C(\\z) (the very end: C($) would also match
    before a trailing newline). Every byte of the string's UTF-8 encoding that is not an ASCII
    letter or digit is written as C(\\x{HH}): nginx runs PCRE in byte mode, and nothing in the
    result is special to nginx's parser."
positional: _input
options:
  _input:
    description: The exact string to match.
    type: str
    required: true
notes:
  - Place the result inside double quotes in the nginx config, with no further escaping; the
    braces of C(\x{HH}) would open a block outside quotes. nginx's quoted-string parser keeps
    a backslash before C(x) and C(z) as it is.
seealso:
  - plugin: mtls.nginx.config_value_problems
    plugin_type: filter
"""

EXAMPLES = r"""
# A map that allows exactly these subjects:
#   map "$ssl_client_s_dn" $dn_ok {
#       default 0;
#       "~^CN\x{3D}ops\x{2D}console\x{2C}O\x{3D}Example\x{20}Corp\z" 1;
#   }
- ansible.builtin.copy:
    dest: /etc/nginx/conf.d/allowed.map
    content: |
      map "$ssl_client_s_dn" $dn_ok {
          default 0;
      {% for subject in allowed_subjects %}
          "{{ subject | mtls.nginx.nginx_exact_regex }}" 1;
      {% endfor %}
      }
"""

RETURN = r"""
_value:
  description: The map key, C(~^...\z), to be placed inside double quotes.
  type: str
  sample: '~^CN\x{3D}ops\x{2D}console\z'
"""

from ansible.errors import AnsibleFilterError


def _literal(byte):
    if b"0"[0] <= byte <= b"9"[0] or b"A"[0] <= byte <= b"Z"[0] or b"a"[0] <= byte <= b"z"[0]:
        return chr(byte)
    return "\\x{%02X}" % byte


def nginx_exact_regex(value):
    if not isinstance(value, str):
        raise AnsibleFilterError("nginx_exact_regex expects a string, not %s" % type(value).__name__)
    return "~^" + "".join(_literal(byte) for byte in value.encode("utf-8")) + "\\z"


class FilterModule:
    def filters(self):
        return {"nginx_exact_regex": nginx_exact_regex}
