# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing PEM files the way the mtls.nginx modules promise: atomically, with owner, group
and mode applied, nothing written in check mode, and diffs that never carry key material."""

import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes


def read_file(path):
    """Bytes of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        from ._crypto import PKIError

        raise PKIError("%s: is a directory, not a file" % path)


class FileWriter:
    """Collects the files a module writes and whether anything changed.

    ``secret`` files (private keys; or a label such as "passphrase") are written with their
    mode set before any byte lands in them, and appear in the diff only as a placeholder.
    """

    def __init__(self, module):
        self.module = module
        self.changed = False
        self.diff = {"before": {}, "after": {}}

    def write(self, path, content, mode, secret=False, owner=None, group=None, validate=None):
        """Write ``content`` to ``path`` unless it is there already; True when this file changed
        (its content, or its owner, group or mode). ``validate``, when given, is called with the
        path of the new content before it replaces the old file, and raises to keep the old one."""
        path = os.path.abspath(os.path.expanduser(path))
        content = to_bytes(content)
        old = read_file(path)
        written = old != content
        if written:
            self.changed = True
            self.diff["before"][path] = _shown(old, secret)
            self.diff["after"][path] = _shown(content, secret)
            if not self.module.check_mode:
                self._atomic_write(path, content, mode, validate)
        attributes = self._attributes(path, mode, owner, group, exists=old is not None or not self.module.check_mode)
        return written or attributes

    def directory(self, path, mode, owner=None, group=None):
        """Make the directory ``path`` when it is missing (its mode set as it is made), then apply
        owner, group and mode; True when it was made or its attributes changed. In check mode a
        missing directory is a change, and nothing is made."""
        path = os.path.abspath(os.path.expanduser(path))
        made = not os.path.isdir(path)
        if made:
            self.changed = True
            if self.module.check_mode:
                return True
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                os.makedirs(parent)
            os.mkdir(path, int(mode, 8) if isinstance(mode, str) else mode)
        attributes = self._attributes(path, mode, owner, group, exists=True)
        return made or attributes

    def remove(self, path, secret=False):
        """Remove a file the module wrote before and no longer wants, when it is there."""
        path = os.path.abspath(os.path.expanduser(path))
        old = read_file(path)
        if old is None:
            return
        self.changed = True
        self.diff["before"][path] = _shown(old, secret)
        self.diff["after"][path] = None
        if not self.module.check_mode:
            os.unlink(path)

    def attributes(self, path, mode, owner=None, group=None):
        """Apply owner/group/mode to a file the module did not rewrite."""
        path = os.path.abspath(os.path.expanduser(path))
        self._attributes(path, mode, owner, group, exists=os.path.exists(path))

    def _attributes(self, path, mode, owner, group, exists):
        if not exists:
            return False
        file_args = self.module.load_file_common_arguments({"mode": mode, "owner": owner, "group": group}, path=path)
        changed = self.module.set_fs_attributes_if_different(file_args, False)
        self.changed = self.changed or changed
        return changed

    def _atomic_write(self, path, content, mode, validate=None):
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            from ._crypto import PKIError

            raise PKIError("%s: directory %s does not exist" % (path, directory))
        atomic_write(path, content, int(mode, 8) if isinstance(mode, str) else mode, validate)


def octal_mode(mode, name):
    """``mode`` as an int: an octal string such as "0644", or an int; anything else is refused
    with ``name``, since the file gets its mode before its content lands."""
    value = None
    if isinstance(mode, int) and not isinstance(mode, bool):
        value = mode
    elif isinstance(mode, str) and mode.isdigit() and set(mode) <= set("01234567"):
        value = int(mode, 8)
    if value is None or not 0 <= value <= 0o7777:
        from ._crypto import PKIError

        raise PKIError("%s: %r is not an octal mode such as '0644'" % (name, mode))
    return value


def write_files(module, entries, directories=()):
    """Make each of ``directories`` (path, mode, owner, group) that is missing, in order (with
    any missing parent, as ``mkdir -p`` makes it), then write each of ``entries`` (path,
    content, mode, owner, group, and optionally validate: a command naming the new content's
    file as %s, run before it replaces the old file) in one go, in order.

    Every entry is checked first (one path named once, an octal mode, a directory that exists or
    comes earlier in ``directories``, outside check mode, a validate command with %s), so that a
    refusal changes nothing. A file whose validate command fails keeps its old content, and the
    files after it are not written. Returns (changed paths, directories first, diffs in the form Ansible shows one diff per file)."""
    from ._crypto import PKIError

    seen = set()
    made = set()
    for index, entry in enumerate(directories):
        name = "directories[%d] (%s)" % (index, entry["path"])
        path = os.path.abspath(os.path.expanduser(entry["path"]))
        if path in seen:
            raise PKIError("%s: the same path is named twice" % name)
        seen.add(path)
        entry["mode"] = octal_mode(entry["mode"], name + ": mode")
        if os.path.exists(path) and not os.path.isdir(path):
            raise PKIError("%s: is a file, not a directory" % name)
        made.add(path)
    for index, entry in enumerate(entries):
        name = "files[%d] (%s)" % (index, entry["path"])
        path = os.path.abspath(os.path.expanduser(entry["path"]))
        if path in seen:
            raise PKIError("%s: the same path is named twice" % name)
        seen.add(path)
        entry["mode"] = octal_mode(entry["mode"], name + ": mode")
        if os.path.isdir(path):
            raise PKIError("%s: is a directory, not a file" % name)
        parent = os.path.dirname(path)
        if not module.check_mode and not os.path.isdir(parent) and parent not in made:
            raise PKIError("%s: directory %s does not exist" % (name, parent))
        if entry.get("validate") is not None and "%s" not in entry["validate"]:
            raise PKIError("%s: validate must name the file to test as %%s, not %r" % (name, entry["validate"]))
    writer = FileWriter(module)
    changed = [entry["path"] for entry in directories
               if writer.directory(entry["path"], entry["mode"], owner=entry.get("owner"), group=entry.get("group"))]
    changed += [entry["path"] for index, entry in enumerate(entries)
                if writer.write(entry["path"], entry["content"], entry["mode"], owner=entry["owner"], group=entry["group"],
                                validate=_validator(module, "files[%d] (%s)" % (index, entry["path"]), entry.get("validate")))]
    diffs = [{"before_header": path, "after_header": path, "before": writer.diff["before"][path] or "",
              "after": writer.diff["after"][path]} for path in writer.diff["after"]]
    return changed, diffs


def _validator(module, name, command):
    """A check of a new file's content before it goes live: ``command`` with %s as the temporary
    file's path (run without a shell, as ansible.builtin.template's validate runs); a failure
    names the entry, the command and what it printed."""
    if command is None:
        return None

    def check(tmp):
        argv = command % tmp
        rc, out, err = module.run_command(argv)
        if rc != 0:
            from ._crypto import PKIError

            shown = (err or out).strip()[-2000:]
            raise PKIError("%s: failed to validate, the old file stays (%s exited %d): %s"
                           % (name, argv, rc, shown))
    return check


def atomic_write(path, content, mode, validate=None):
    """Replace ``path`` with ``content``: a temporary file in the same directory, its mode set
    before the content lands (a key is never readable by others) and its owner kept, flushed to
    disk, then (once ``validate``, when given, accepted the temporary file) renamed over
    ``path``; readers see the old file or the new one, never half."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".mtls-", dir=directory)
    try:
        os.fchmod(fd, mode)
        _keep_owner(fd, path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if validate is not None:
            validate(tmp)
        # os.replace keeps the mode set above; atomic_move would widen a new file to 0644 first.
        os.replace(tmp, path)
        # The rename itself survives a crash only once the directory is on disk too.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _shown(content, secret):
    """What a diff shows of a file's content: never a key or a passphrase."""
    if content is None:
        return None
    if secret is True:
        return "<%d bytes of key material>" % len(content)
    if secret:
        return "<%s, not shown>" % secret
    return content.decode("utf-8", "replace")


def _keep_owner(fd, path):
    # A replaced file keeps its owner and group (nginx may read it as another user); owner/group options still win.
    try:
        info = os.stat(path)
        os.fchown(fd, info.st_uid, info.st_gid)
    except (FileNotFoundError, PermissionError):
        pass
