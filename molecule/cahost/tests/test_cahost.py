"""A PKI that outlives its controller. The CA lives on a CA host (mtls_pki_ca_host): nothing of
it is on the machine that ran the playbook; jobs run as AWX runs them (ansible-runner in a new
container of the execution environment each time, with nothing kept but the project and the
inventory) change nothing and keep the hosts' CA; two writers at once both land, one waiting for
the other's lock and saying who held it; a backup restored on a new CA host serves the next run
with nothing to change, and a truncated or foreign archive is refused with nothing changed.

The tests run in file order and share the scenario's state."""

import json
import os
import re
import shlex
import subprocess
import time

import pytest
import testinfra
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from mtls_testing import EPHEMERAL, PROXY_PKI, UPSTREAM_PKI, curl, inventory_dir, run_playbook

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PROJECT = os.path.join(os.path.dirname(__file__), "..", "ee-project")
CA_DIR = "/var/lib/mtls-nginx/pki"
CA1, CA2 = "mtls-cahost-ca1", "mtls-cahost-ca2"
# The files that make a CA: none of them may exist on the machine that ran the playbooks.
CA_FILES = ("ca.key", "ca.pem", "ca.crl", "intermediate.key", "intermediate.pem", "intermediate.crl",
            "intermediate-chain.pem", "ledger.json")


@pytest.fixture(scope="module")
def hosts(request):
    inventory = request.config.option.ansible_inventory
    return {host.backend.get_hostname(): host for host in testinfra.get_hosts(["ansible://all"], ansible_inventory=inventory)}


@pytest.fixture(scope="module")
def ee_image():
    """The execution environment of this checkout (scripts/ee/build: built when missing)."""
    done = subprocess.run([os.path.join(ROOT, "scripts", "ee", "build")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def _recap(output):
    recap = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        match = re.match(r"^(\S+)\s*:\s*(.*)$", line.strip())
        if match and "ok=" in match.group(2):
            recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return recap


def _ee_command(image, playbook, *extra):
    env = dict(os.environ, MTLS_EE_IMAGE=image)
    return ([os.path.join(ROOT, "scripts", "ee", "run"), PROJECT, playbook, inventory_dir()] + list(extra)), env


def ee_run(image, playbook, *extra):
    """A job as AWX runs it: a new EE container, the project and the inventory, nothing else."""
    command, env = _ee_command(image, playbook, *extra)
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    return done.returncode, done.stdout, _recap(done.stdout)


def _chain_fingerprints(hosts):
    """What every tier presents and trusts: the SHA-256 of each certificate of its files."""
    found = {}
    for name, directory in (("mtls-cahost-upstream", UPSTREAM_PKI), ("mtls-cahost-proxy", PROXY_PKI)):
        out = hosts[name].check_output("for f in %s/*.pem; do echo \"$f $(openssl x509 -in $f -noout -fingerprint -sha256)\"; done"
                                       % directory)
        found[name] = out
    return found


def _crl_numbers(host):
    numbers = {}
    for name in ("ca.crl", "intermediate.crl"):
        crl = x509.load_pem_x509_crl(host.file("%s/%s" % (CA_DIR, name)).content)
        numbers[name] = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return numbers


def _crl_serials(host, path):
    text = host.file(path).content_string
    blocks = re.findall(r"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", text, re.S)
    return {"%X" % revoked.serial_number for block in blocks for revoked in x509.load_pem_x509_crl(block.encode())}


def _ledger(host):
    return {entry["serial"]: entry for entry in json.loads(host.file(CA_DIR + "/ledger.json").content_string)["certificates"]}


def _of_this_ca(path, ca):
    """Whether a file holds anything of the CA on the CA host: one of its certificates, a key
    whose public key is one of its keys', a CRL one of its keys signed, a ledger naming a serial
    it issued. (A file is judged by its content, so another CA on the same machine, such as the
    benchmark's or the unit tests', is not this one, and a copy of this one under any date is.)"""
    try:
        with open(path, "rb") as handle:
            data = handle.read(4 << 20)
    except OSError:
        return False
    if b"-----BEGIN CERTIFICATE-----" in data:
        for block in re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", data, re.S):
            try:
                if x509.load_pem_x509_certificate(block).fingerprint(hashes.SHA256()) in ca["fingerprints"]:
                    return True
            except ValueError:
                continue
    if b"PRIVATE KEY-----" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            key = None
        if key is not None and _public_der(key.public_key()) in ca["keys"]:
            return True
    if b"-----BEGIN X509 CRL-----" in data:
        for block in re.findall(rb"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", data, re.S):
            try:
                crl = x509.load_pem_x509_crl(block)
            except ValueError:
                continue
            for public in ca["publics"]:
                try:
                    if crl.is_signature_valid(public):
                        return True
                except TypeError:
                    continue
    if path.endswith(".json"):
        try:
            entries = json.loads(data).get("certificates", [])
            return any(isinstance(entry, dict) and entry.get("serial") in ca["serials"] for entry in entries)
        except (ValueError, AttributeError):
            return False
    return False


def _public_der(public):
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_ca_is_on_its_ca_host_and_nothing_of_it_on_the_machine_that_ran_the_playbook(hosts):
    ca1 = hosts[CA1]
    for name in ("ca.key", "intermediate.key"):
        key = ca1.file("%s/%s" % (CA_DIR, name))
        assert key.exists and key.mode == 0o600, name
    assert ca1.file(CA_DIR).mode == 0o700
    assert not hosts[CA2].file(CA_DIR).exists
    certificates = [x509.load_pem_x509_certificate(ca1.file("%s/%s" % (CA_DIR, name)).content)
                    for name in ("ca.pem", "intermediate.pem")]
    ca = {"fingerprints": {cert.fingerprint(hashes.SHA256()) for cert in certificates},
          "publics": [cert.public_key() for cert in certificates],
          "keys": {_public_der(cert.public_key()) for cert in certificates},
          "serials": set(_ledger(ca1))}
    assert len(ca["serials"]) >= 2
    # Where a controller keeps a CA (the default mtls_pki_dir, this scenario's directory): no CA
    # file at all. The temporary folders, Ansible's and the checkout: no file of a CA's name
    # holding anything of this CA, whenever it was written. (The unit tests' own CAs under
    # /tmp/pytest-of-* and other scenarios' under their ~/.ansible/tmp/molecule.* are not this
    # playbook's.)
    found = []
    anywhere = (os.path.expanduser("~/.mtls-nginx"), EPHEMERAL)
    for top in anywhere + (os.path.expanduser("~/.ansible"), "/tmp", "/var/tmp", ROOT):
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in (".git", ".build") and not d.startswith((".venv", "pytest-of-"))
                       and not (d.startswith("molecule.") and os.path.join(folder, d) != EPHEMERAL)]
            for name in files:
                path = os.path.join(folder, name)
                if name in CA_FILES and (top in anywhere or _of_this_ca(path, ca)):
                    found.append(path)
    assert found == [], found


def test_ee_jobs_in_new_containers_change_nothing_and_keep_the_hosts_ca(hosts, ee_image):
    before = _chain_fingerprints(hosts)
    for attempt in (1, 2):
        rc, out, recap = ee_run(ee_image, "site.yml")
        assert rc == 0, out[-4000:]
        assert set(recap) >= {"mtls-cahost-upstream", "mtls-cahost-proxy"}, out[-2000:]
        changed = {host: counts["changed"] for host, counts in recap.items() if counts["changed"]}
        assert changed == {}, (attempt, out[-6000:])
        assert _chain_fingerprints(hosts) == before
    assert curl(hosts["mtls-cahost-proxy"], "http://127.0.0.1:8080/after-ee").status == 200


def test_two_writers_at_once_both_land_and_the_waiting_one_says_who_held_the_lock(hosts, ee_image):
    """A colleague's run holds the CA's lock; two jobs revoke a serial each at the same time, with
    different --limit: both wait, say who held the lock, and both revocations are in the CRLs
    after, with CRL numbers that only grew."""
    ca1 = hosts[CA1]
    numbers = _crl_numbers(ca1)
    holder = json.dumps({"host": CA1, "pid": 1, "what": "a colleague's run (test)", "since": "now"})
    ca1.run_expect([0], "setsid flock %s -c %s > /dev/null 2>&1 < /dev/null &" % (
        CA_DIR, shlex.quote("printf %%s %s > %s/.lock; sleep 300" % (shlex.quote(holder), CA_DIR))))
    jobs = []
    try:
        for limit, serial in (("mtls-cahost-upstream", "7E57A1"), ("mtls-cahost-proxy", "7E57B2")):
            command, env = _ee_command(ee_image, "revoke.yml", "--limit", limit, "-e", "mtls_revoke_serials=" + serial)
            jobs.append((serial, limit, subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                         text=True)))
        # Hold the lock until both jobs wait for it on the CA host (each a Python process with the
        # CA's directory open to lock it), or 150 s.
        waiting = ("for p in /proc/[0-9]*; do ls -l $p/fd 2>/dev/null | grep -q ' -> %s$' && grep -qa python $p/cmdline "
                   "&& echo $p; done | wc -l" % CA_DIR)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            count = ca1.run(waiting).stdout.strip()
            if count.isdigit() and int(count) >= 2:
                break
            time.sleep(1)
        time.sleep(2)
    finally:
        ca1.run("pkill -f 'sleep 300' || true")
    outputs = {}
    for serial, limit, job in jobs:
        output = job.communicate(timeout=600)[0]
        assert job.returncode == 0, output[-4000:]
        outputs[serial] = output
    # The warning, however Ansible wraps it.
    said = r"\s+".join(["waited", r"[0-9.]+", "s", "for", "the", "lock", "of", re.escape(CA_DIR) + ",", "held", "by", "a",
                        "colleague's", "run", r"\(test\)"])
    for serial, output in outputs.items():
        assert re.search(said, output), output[-4000:]
    ledger = _ledger(ca1)
    assert ledger["7E57A1"]["status"] == ledger["7E57B2"]["status"] == "revoked"
    after = _crl_numbers(ca1)
    assert all(after[name] > numbers[name] for name in numbers), (numbers, after)
    for name in ("ca.crl", "intermediate.crl"):
        assert {"7E57A1", "7E57B2"} <= _crl_serials(ca1, "%s/%s" % (CA_DIR, name))
    # Each job pushed the CRLs to the hosts of its --limit; the later one's hold both serials.
    assert "7E57A1" in _crl_serials(hosts["mtls-cahost-upstream"], UPSTREAM_PKI + "/client-ca.crl")
    assert "7E57B2" in _crl_serials(hosts["mtls-cahost-proxy"], PROXY_PKI + "/upstream-ca.crl")
    assert not ca1.file(CA_DIR + "/.lock").exists


def _tree(host, directory):
    out = host.run("find %s -exec stat -c '%%n %%a %%s' {} + 2>/dev/null | sort; find %s -type f -exec sha256sum {} + "
                   "2>/dev/null | sort" % (directory, directory))
    return out.stdout


def test_a_backup_restored_on_a_new_ca_host_serves_the_next_run_and_bad_archives_change_nothing(hosts, tmp_path):
    archive = tmp_path / "ca.mtlsca"
    secrets = tmp_path / "vault.json"
    secrets.write_text(json.dumps({"mtls_ca_backup_passphrase": "correct horse battery staple"}))
    rc, out, _recap = run_playbook("mtls.nginx.ca_backup", "-e", "mtls_ca_backup_file=%s" % archive, "-e", "@%s" % secrets)
    assert rc == 0, out[-4000:]
    assert archive.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN EC PRIVATE KEY" not in archive.read_bytes() and b"correct horse" not in archive.read_bytes()
    assert "correct horse" not in out

    new_host = ["-e", "mtls_pki_ca_host=%s" % CA2, "-e", "@%s" % secrets]
    ca2 = hosts[CA2]
    untouched = _tree(ca2, "/var/lib/mtls-nginx")
    # A truncated archive, and the archive of another CA: refused, naming the problem, nothing changed.
    truncated = tmp_path / "truncated.mtlsca"
    truncated.write_bytes(archive.read_bytes()[:-100])
    rc, out, _recap = run_playbook("mtls.nginx.ca_restore", "-e", "mtls_ca_restore_file=%s" % truncated, *new_host)
    assert rc != 0 and "truncated:" in out, out[-4000:]
    assert _tree(ca2, "/var/lib/mtls-nginx") == untouched
    foreign = _foreign_archive(tmp_path)
    rc, out, _recap = run_playbook("mtls.nginx.ca_restore", "-e", "mtls_ca_restore_file=%s" % foreign, *new_host)
    assert rc != 0 and "an archive of another CA" in out, out[-4000:]
    assert _tree(ca2, "/var/lib/mtls-nginx") == untouched

    # The old CA host is lost; the archive goes onto the new one, and the next run finds every
    # certificate in place.
    hosts[CA1].run_expect([0], "rm -rf %s" % CA_DIR)
    rc, out, _recap = run_playbook("mtls.nginx.ca_restore", "-e", "mtls_ca_restore_file=%s" % archive, *new_host)
    assert rc == 0, out[-4000:]
    assert ca2.file(CA_DIR + "/ca.key").mode == 0o600
    rc, out, recap = run_playbook("mtls.nginx.site", "-e", "mtls_pki_ca_host=%s" % CA2)
    assert rc == 0, out[-4000:]
    changed = {host: counts["changed"] for host, counts in recap.items() if counts["changed"]}
    assert changed == {}, out[-6000:]
    assert not hosts[CA1].file(CA_DIR).exists
    assert curl(hosts["mtls-cahost-proxy"], "http://127.0.0.1:8080/after-restore").status == 200


def _foreign_archive(tmp_path):
    """The archive of another CA, made on this machine with the collection's modules."""
    other = tmp_path / "other-ca"
    archive = tmp_path / "other.mtlsca"
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="default")
    for module, args in (
            ("mtls.nginx.ca", "path=%s/ca.pem privatekey_path=%s/ca.key common_name='another CA' crl_path=%s/ca.crl"
             % (other, other, other)),
            ("mtls.nginx.ca_archive", "state=backup path=%s dest=%s passphrase='correct horse battery staple'"
             % (other, archive))):
        if module == "mtls.nginx.ca":
            other.mkdir(mode=0o700)
        done = subprocess.run(["ansible", "localhost", "-m", module, "-a", args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=False)
        assert done.returncode == 0, done.stdout[-3000:]
    return archive
