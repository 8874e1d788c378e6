"""mtls.nginx.certificate refuses a hostile common name even where its logic would build no name."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

import pkifactory
from fakemodule import FakeModule
from ansible_collections.mtls.nginx.plugins.module_utils import _crypto
from ansible_collections.mtls.nginx.plugins.module_utils._files import FileWriter
from ansible_collections.mtls.nginx.plugins.module_utils._pki import CertificateAuthority, ensure_leaf
from ansible_collections.mtls.nginx.plugins.modules import certificate


def test_sign_refuses_a_hostile_common_name_even_when_the_current_certificate_fits(tmp_path, capsys):
    CertificateAuthority(FileWriter(FakeModule()), str(tmp_path / "ca.pem"), str(tmp_path / "ca.key"),
                         "Unit CA").ensure()
    signer = pkifactory.Cert(_crypto.load_certificates((tmp_path / "ca.pem").read_bytes(), "ca.pem")[0],
                             _crypto.load_private_key((tmp_path / "ca.key").read_bytes(), "ca.key"))
    # Made before the check existed: its common name carries nginx syntax.
    current = pkifactory.issue("svc; evil", issuer=signer, sans=("DNS:svc",))
    csr = _crypto.csr_pem(_crypto.build_csr(current.key, current.cert.subject, "server", [])).decode("ascii")
    args = {"operation": "sign", "purpose": "server", "common_name": "svc; evil", "subject_alt_names": ["DNS:svc"],
            "csr_content": csr, "certificate_content": current.pem.decode("ascii"),
            "ca_path": str(tmp_path / "ca.pem"), "ca_privatekey_path": str(tmp_path / "ca.key")}

    # The logic keeps a certificate that fits without building a name, so the module checks first.
    kept = ensure_leaf(FileWriter(FakeModule()), **args)
    assert kept["signed"] is False

    with patch_module_args(args):
        with pytest.raises(SystemExit) as done:
            certificate.main()
    result = json.loads(capsys.readouterr().out)
    assert done.value.code != 0
    assert result["msg"] == "common_name: 'svc; evil' is not a certificate common name (';' is not allowed)"
