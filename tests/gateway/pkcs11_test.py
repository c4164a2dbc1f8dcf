"""Keys in a PKCS #11 token (tests/gateway/softhsm.py: SoftHSM2, key pairs made inside it by pkcs11-tool): the
gateway's platform key (RSA) names it in [gateway], and the real WeChat Pay v3 SDK as the merchant verifies every
answer with the public key `ledger merchant-keys` read from the token; the ledger's checkpoint key (Ed25519) names
it in [audit], and `ledger replay` verifies the checkpoints it signed with the public key pkcs11-tool reads out.
A PIN file open to others, a wrong PIN and a key the token does not hold stop the gateway and the ledger at
start (exit 2, one line, the PIN in no output), and no key file is ever written. A token that goes away while
serve runs (pkcs11_shim.cc, a module wrapping SoftHSM2 that fails on demand) holds the shard's publication at the
event it cannot seal, and the same serve goes on once the token is back.

    pkcs11_test.py LEDGER_BINARY SDK_PYTHON

Exits 77 (skipped, saying why) without the SDK venv; scripts/setup.sh installs softhsm2 and opensc, so their
absence is a failure.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_sdk_test as sdk  # noqa: E402
from softhsm import MODULE, PIN, SoftHsmToken  # noqa: E402

WRONG_PIN = "917364"  # a PIN the token refuses: no output may hold it either

class Pkcs11PlatformKeyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.TemporaryDirectory(prefix="gateway-pkcs11-")
        cls.token = SoftHsmToken(cls.scratch.name, "ledger")
        cls.token_public_pem = cls.token.generate("platform", "rsa:2048")
        cls.checkpoint_public_pem = cls.token.generate("checkpoints", "EC:edwards25519")

        cls.data = os.path.join(cls.scratch.name, "data")
        path = os.path.join(cls.scratch.name, "setup.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in sdk.COMMANDS))
        sdk.run_ledger("submit", "--data", cls.data, path)
        cls.write_config(cls.token.uri("platform"))
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
    def write_config(cls, uri, folder=None, audit=""):
        folder = folder or cls.data
        section = cls.token.configure(folder)
        with open(os.path.join(folder, "ledger.toml"), "w") as f:
            f.write(f'{section}[gateway]\nplatform_key = "{uri}"\n{audit}')

    def refused(self, name, *args):
        """`ledger ARGS` as it is now configured: it must stop at start with exit 2 and one line."""
        done = subprocess.run([sdk.LEDGER, *args], capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 2, f"{name}: {done.stdout}{done.stderr}")
        self.assertNotIn("gateway=https://", done.stdout, name)
        for pin in (PIN, WRONG_PIN):
            self.assertNotIn(pin, done.stdout + done.stderr, name)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, f"{name}: {done.stderr}")
        return done.stderr

    def start_refused(self, name):
        return self.refused(name, "gateway", "--data", self.data, "--listen", "127.0.0.1:0")

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
            self.token.write_pin(self.data, PIN, 0o644)
            self.assertIn("open to no one else", self.start_refused("a PIN file others may read"))
            self.token.write_pin(self.data, WRONG_PIN, 0o600)
            self.assertIn("the token refused the PIN", self.start_refused("a wrong PIN"))
            self.write_config("pkcs11:token=ledger;object=no-such-key")
            self.assertIn("the token holds no private key", self.start_refused("a key the token does not hold"))
            self.write_config(self.token.uri("checkpoints"))
            self.assertIn("is not an RSA key", self.start_refused("an Ed25519 key as the platform key"))
            self.write_config("pkcs11:token=ledger")
            self.assertIn("several private keys", self.start_refused("a URI naming the token's two keys"))
            self.write_config("pkcs11:token=ledger;object=platform;type=public")
            self.assertIn("not a private key", self.start_refused("a public key's URI"))
            self.write_config("pkcs11:token=another;object=platform")
            self.assertIn("no token matches", self.start_refused("a token that is not there"))
        finally:
            self.write_config(self.token.uri("platform"))
        self.assertFalse(os.path.exists(os.path.join(self.data, "gateway", "platform_key.pem")))
        with open(self.log) as f:
            self.assertNotIn(PIN, f.read())

    def test_04_the_ledgers_checkpoint_key_signs_in_the_token_and_replay_verifies_it(self):
        # A ledger of its own (the gateway holds the first): the token's Ed25519 key signs its checkpoints.
        folder = os.path.join(self.scratch.name, "ledger-with-token")
        audit = f'[audit]\nprivate_key = "{self.token.uri("checkpoints")}"\ncheckpoint_every = 3\n'
        self.write_config(self.token.uri("platform"), folder, audit)
        path = os.path.join(self.scratch.name, "setup.jsonl")
        sdk.run_ledger("submit", "--data", folder, path)
        made = json.loads(sdk.run_ledger("checkpoint", "--data", folder, "--json").stdout)
        self.assertGreater(made["checkpoint_sequence"], 0, made)
        public = os.path.join(self.scratch.name, "checkpoints.pub")
        with open(public, "w") as f:
            f.write(self.checkpoint_public_pem)
        replay = subprocess.run([sdk.LEDGER, "replay", "--data", folder, "--pubkey", public],
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(replay.returncode, 0, replay.stdout + replay.stderr)
        self.assertIn("replay VERIFIED", replay.stdout)
        self.assertRegex(replay.stdout, r"checkpoints: ([2-9]|[1-9][0-9]+) seen, \1 verified", replay.stdout)
        # Another Ed25519 key verifies none of them (exit 5: not verified).
        other_keys = os.path.join(self.scratch.name, "other-keys")
        sdk.run_ledger("keygen", "--out", other_keys)
        other = subprocess.run([sdk.LEDGER, "replay", "--data", folder, "--pubkey",
                                os.path.join(other_keys, "ledger-signing.pub")],
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(other.returncode, 5, other.stdout + other.stderr)
        # `submit --producer-key` takes a key of the data folder's token too (found there, or refused there).
        self.assertIn("the token holds no private key", self.refused(
            "a producer key the token does not hold", "submit", "--data", folder, "--brokers", "127.0.0.1:1",
            "--producer-key", "pkcs11:token=ledger;object=operator", path))
        # A wrong PIN: the ledger does not open (nothing written), and says so in one line.
        self.token.write_pin(folder, WRONG_PIN, 0o600)
        try:
            self.assertIn("the token refused the PIN", self.refused("a wrong PIN", "checkpoint", "--data", folder))
        finally:
            self.token.write_pin(folder)
        for name in os.listdir(folder):
            self.assertFalse(name.endswith(".key") or name.endswith(".pem"), name)

    def test_05_a_token_that_stops_signing_holds_publication_until_it_is_back(self):
        """The ledger's key in a token that goes away while serve runs (tests/gateway/pkcs11_shim.cc makes
        SoftHSM2 fail on demand): the event it cannot seal is not published, serve says why, and once the token is
        back the same serve seals and publishes it and the command is answered — no restart."""
        scratch = self.scratch.name
        folder = os.path.join(scratch, "shard-through-shim")
        unplugged = os.path.join(scratch, "token-unplugged")
        os.environ["LEDGER_PKCS11_SHIM_MODULE"] = MODULE
        os.environ["LEDGER_PKCS11_SHIM_FAIL"] = unplugged
        public = os.path.join(scratch, "checkpoints.pub")
        with open(public, "w") as f:
            f.write(self.checkpoint_public_pem)
        self.token.configure(folder)
        shim = os.path.join(os.path.dirname(os.path.abspath(sdk.LEDGER)), "libledger_pkcs11_shim.so")
        with open(os.path.join(folder, "ledger.toml"), "w") as f:
            f.write(f'[pkcs11]\nmodule = "{shim}"\npin_file = "hsm.pin"\n[audit]\n'
                    f'private_key = "{self.token.uri("checkpoints")}"\npublic_key = "{public}"\n')
        operator = os.path.join(scratch, "operator")
        sdk.run_ledger("producer-key", "--data", folder, "--producer", "ops", "--out", operator)
        background = []  # started in order, stopped in reverse

        def start(args, prefix, log):
            background.append(sdk.Background(args, os.path.join(scratch, log)))
            return background[-1].first_line(prefix)

        def command(merchant):
            path = os.path.join(scratch, f"{merchant}.jsonl")
            with open(path, "w") as f:
                f.write(json.dumps({"type": "open_merchant", "command_id": merchant, "merchant": merchant,
                                    "name": "Shop", "fee_bps": 60}) + "\n")
            return [sdk.LEDGER, "submit", "--brokers", brokers, "--producer-key",
                    os.path.join(operator, "producer.key"), path]

        def events():
            done = subprocess.run(["kcat", "-C", "-b", brokers, "-t", "ledger.events", "-p", "0", "-o", "beginning",
                                   "-e", "-q", "-f", "%h<end of record>"], capture_output=True, timeout=60)
            return done.stdout.split(b"<end of record>")[:-1]  # bytes: a seal is binary, any byte may be in it

        waiting = None
        try:
            brokers = start(["broker", "--partitions", "1"], "bootstrap=", "broker.log")
            start(["serve", "--data", folder, "--brokers", brokers], "bootstrap=", "serve.log")
            done = subprocess.run(command("M8"), capture_output=True, text=True, timeout=120)
            self.assertIn('"status":"accepted"', done.stdout, done.stderr)
            before = events()
            self.assertIn(b"ledger.seal=", before[-1])  # the pass's last event
            with open(unplugged, "w"):
                pass
            waiting = subprocess.Popen(command("M9"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            log = os.path.join(scratch, "serve.log")
            for _ in range(300):
                with open(log) as f:
                    if "did not seal event" in f.read():
                        break
                time.sleep(0.1)
            with open(log) as f:
                said = f.read()
            self.assertIn(f"did not seal event {len(before) + 1}", said)
            self.assertEqual(events(), before)  # nothing went out unsealed
            self.assertIsNone(waiting.poll())   # and nothing was answered
            os.remove(unplugged)
            out, err = waiting.communicate(timeout=120)
            self.assertIn('"status":"accepted"', out, err)
            after = events()
            self.assertEqual(len(after), len(before) + 1)
            self.assertIn(b"ledger.type=MerchantOpened", after[-1])
            self.assertIn(b"ledger.seal=", after[-1])
            with open(log) as f:
                self.assertNotIn(PIN, f.read())
        finally:
            if waiting is not None and waiting.poll() is None:
                waiting.kill()
                waiting.communicate()
            for program in reversed(background):
                program.stop()


if __name__ == "__main__":
    sdk.main(__doc__)
