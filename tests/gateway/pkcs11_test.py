"""The platform key in a PKCS #11 token: Debian's SoftHSM2 as the token, its key pair made inside it by OpenSC's
pkcs11-tool (never extractable), ledger.toml's [gateway] naming it; the real WeChat Pay v3 SDK as the merchant
verifies every answer with the public key `ledger merchant-keys` read from the token. A PIN file open to
others, a wrong PIN and a key the token does not hold stop the gateway at start (exit 2, one line, the PIN in
no output), and no platform_key.pem is ever written.

    pkcs11_test.py LEDGER_BINARY SDK_PYTHON

Exits 77 (skipped, saying why) without the SDK venv; scripts/setup.sh installs softhsm2, opensc and
libengine-pkcs11-openssl, so their absence is a failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_sdk_test as sdk  # noqa: E402

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "482913"
SO_PIN = "77310528"
URI = "pkcs11:token=ledger-platform;object=platform"


def run(*args, check=True):
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


class Pkcs11PlatformKeyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("softhsm2-util", "pkcs11-tool"):
            if shutil.which(tool) is None:
                raise AssertionError(f"{tool} is missing: scripts/setup.sh installs softhsm2 and opensc")
        cls.scratch = tempfile.TemporaryDirectory(prefix="gateway-pkcs11-")
        tokens = os.path.join(cls.scratch.name, "tokens")
        os.makedirs(tokens)
        config = os.path.join(cls.scratch.name, "softhsm2.conf")
        with open(config, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = config  # the token this test made, for every child process
        run("softhsm2-util", "--init-token", "--free", "--label", "ledger-platform", "--pin", PIN, "--so-pin", SO_PIN)
        run("pkcs11-tool", "--module", MODULE, "--login", "--pin", PIN, "--keypairgen", "--key-type", "rsa:2048",
            "--label", "platform", "--id", "01")
        public_der = os.path.join(cls.scratch.name, "platform.der")
        run("pkcs11-tool", "--module", MODULE, "--read-object", "--type", "pubkey", "--label", "platform",
            "--output-file", public_der)
        cls.token_public_pem = run("openssl", "pkey", "-pubin", "-inform", "DER", "-in", public_der).stdout

        cls.data = os.path.join(cls.scratch.name, "data")
        path = os.path.join(cls.scratch.name, "setup.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in sdk.COMMANDS))
        sdk.run_ledger("submit", "--data", cls.data, path)
        cls.write_pin(PIN, 0o600)
        cls.write_config(URI)
        cls.kit = os.path.join(cls.scratch.name, "kit-M1")
        sdk.run_ledger("merchant-keys", "--data", cls.data, "--merchant", "M1", "--out", cls.kit)
        os.environ["REQUESTS_CA_BUNDLE"] = os.path.join(cls.kit, "ca.pem")
        cls.log = os.path.join(cls.scratch.name, "gateway.log")
        cls.gateway = sdk.Gateway(cls.data, cls.log, sdk.free_port())
        cls.m1 = sdk.merchant_client(sdk.read_kit(cls.kit), cls.gateway.url, "M1")

    @classmethod
    def tearDownClass(cls):
        if cls.gateway.process.poll() is None:
            cls.gateway.stop()
        cls.scratch.cleanup()

    @classmethod
    def write_pin(cls, pin, mode):
        path = os.path.join(cls.data, "hsm.pin")
        with open(path, "w") as f:
            f.write(pin + "\n")
        os.chmod(path, mode)

    @classmethod
    def write_config(cls, uri):
        with open(os.path.join(cls.data, "ledger.toml"), "w") as f:
            f.write(f'[gateway]\nplatform_key = "{uri}"\npkcs11_module = "{MODULE}"\npkcs11_pin_file = "hsm.pin"\n')

    def start_refused(self, name):
        """`ledger gateway` as it is now configured: it must stop at start with exit 2 and one line."""
        done = subprocess.run([sdk.LEDGER, "gateway", "--data", self.data, "--listen", "127.0.0.1:0"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 2, f"{name}: {done.stdout}{done.stderr}")
        self.assertNotIn("gateway=https://", done.stdout, name)
        self.assertNotIn(PIN, done.stdout + done.stderr, name)
        return done.stderr

    def test_01_the_kit_holds_the_tokens_public_key_and_no_key_file_is_written(self):
        with open(os.path.join(self.kit, "platform_public_key.pem")) as f:
            self.assertEqual(f.read(), self.token_public_pem)
        self.assertFalse(os.path.exists(os.path.join(self.data, "gateway", "platform_key.pem")))

    def test_02_the_sdk_verifies_answers_the_token_signed(self):
        code, text = self.m1.pay(description="token-signed", out_trade_no="H1", amount={"total": 1_000})
        self.assertEqual(code, 200, text)  # the SDK raises on a 2xx whose signature does not verify
        self.assertTrue(json.loads(text)["code_url"].startswith("ledger://pay/"), text)
        code, text = self.m1.query(out_trade_no="H1")
        self.assertEqual((code, json.loads(text)["trade_state"]), (200, "NOTPAY"), text)

    def test_03_a_gateway_whose_pin_or_key_is_wrong_never_starts(self):
        try:
            self.write_pin(PIN, 0o644)
            self.assertIn("open to no one else", self.start_refused("a PIN file others may read"))
            self.write_pin("000000", 0o600)
            self.assertIn("pkcs11", self.start_refused("a wrong PIN"))
            self.write_pin(PIN, 0o600)
            self.write_config("pkcs11:token=ledger-platform;object=no-such-key")
            self.assertIn("cannot load the private key at", self.start_refused("a key the token does not hold"))
        finally:
            self.write_pin(PIN, 0o600)
            self.write_config(URI)
        self.assertFalse(os.path.exists(os.path.join(self.data, "gateway", "platform_key.pem")))
        with open(self.log) as f:
            self.assertNotIn(PIN, f.read())


if __name__ == "__main__":
    sdk.main(__doc__)
