"""The roles, imported into a playbook that already manages another nginx site, leave that
site alone: it keeps its files and keeps serving, next to the mTLS tier."""

import pytest
from mtls_testing import curl

EXISTING_SITE = """server {
    listen 127.0.0.1:8090;
    root /var/www/existing;
}
"""


OWN_FILES = {"upstream": "mtls-upstream.conf", "proxy": "mtls-proxy.conf"}


@pytest.fixture(params=sorted(OWN_FILES))
def tier(request):
    return request.param


@pytest.fixture
def host(tier, upstream, proxy):
    return {"upstream": upstream, "proxy": proxy}[tier]


def test_the_existing_site_keeps_serving(host):
    response = curl(host, "http://127.0.0.1:8090/")
    assert response.status == 200
    assert response.body == "the existing site\n"


def test_the_existing_site_and_nginx_conf_are_unchanged(host):
    assert host.file("/etc/nginx/sites-available/existing").content_string == EXISTING_SITE
    assert host.file("/etc/nginx/sites-enabled/existing").linked_to == "/etc/nginx/sites-available/existing"
    # The distribution's files, nginx.conf included, are as the package installed them.
    verify = host.run("dpkg --verify nginx nginx-common")
    assert verify.rc == 0 and verify.stdout == "", verify.stdout


def test_the_roles_added_only_their_own_files(host, tier):
    listed = host.run("find /etc/nginx/conf.d /etc/nginx/sites-enabled -mindepth 1 -printf '%f\\n'")
    assert sorted(listed.stdout.split()) == sorted(["default", "existing", OWN_FILES[tier]])


def test_the_mtls_tier_serves_next_to_it(proxy):
    assert curl(proxy, "http://127.0.0.1:8080/").status == 200
