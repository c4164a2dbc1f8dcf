"""A SoftHSM2 token for the tests that keep keys in a PKCS #11 token: Debian's softhsm2 as the token, OpenSC's
pkcs11-tool making key pairs inside it (never extractable) and reading their public keys out.

    token = SoftHsmToken(scratch, "ledger")        # sets SOFTHSM2_CONF for this process and its children
    other = SoftHsmToken(scratch, "gateway", "735190")   # a second token (its own PIN) beside the first
    pem = token.generate("platform", "rsa:2048")   # or "EC:edwards25519"; returns the public key (PEM)
    token.uri("platform")                          # pkcs11:token=ledger;object=platform
    token.configure(data_folder)                   # <data>/hsm.pin (0600) and the [pkcs11] lines to add
"""
import os
import shutil
import subprocess

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "482913"
SO_PIN = "77310528"


def run(*args):
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def suppress_module_leaks():
    """Under AddressSanitizer, ignores the leaks of SoftHSM2 itself (softhsm.lsan says which) in every child
    process of the test that made a token. The stack must be unwound in full to see that a leak comes from the
    module (OpenSSL, which it calls, keeps no frame pointers), so malloc's stacks are unwound the slow way in all
    of that test's ledger processes (a few times slower under ASan; other tests are not touched)."""
    suppressions = os.path.join(os.path.dirname(os.path.abspath(__file__)), "softhsm.lsan")
    lsan = os.environ.get("LSAN_OPTIONS", "")
    if suppressions not in lsan:
        os.environ["LSAN_OPTIONS"] = ":".join(
            filter(None, [lsan, f"suppressions={suppressions}", "print_suppressions=0"]))
    asan = os.environ.get("ASAN_OPTIONS", "")
    if "fast_unwind_on_malloc" not in asan:
        os.environ["ASAN_OPTIONS"] = ":".join(filter(None, [asan, "fast_unwind_on_malloc=0"]))


class SoftHsmToken:
    def __init__(self, scratch, label, pin=PIN):
        for tool in ("softhsm2-util", "pkcs11-tool"):
            if shutil.which(tool) is None:
                raise AssertionError(f"{tool} is missing: scripts/setup.sh installs softhsm2 and opensc")
        self.scratch = scratch
        self.label = label
        self.pin = pin
        tokens = os.path.join(scratch, "tokens")
        os.makedirs(tokens, exist_ok=True)
        config = os.path.join(scratch, "softhsm2.conf")
        with open(config, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = config  # the token this test made, for every child process
        suppress_module_leaks()
        run("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", SO_PIN)
        self.next_id = 1

    def generate(self, name, key_type):
        """A key pair made in the token under `name`; returns its public key as PEM (SubjectPublicKeyInfo)."""
        key_id = f"{self.next_id:02x}"
        self.next_id += 1
        run("pkcs11-tool", "--module", MODULE, "--token-label", self.label, "--login", "--pin", self.pin,
            "--keypairgen", "--key-type", key_type, "--label", name, "--id", key_id)
        exported = os.path.join(self.scratch, f"{name}.public")
        run("pkcs11-tool", "--module", MODULE, "--token-label", self.label, "--read-object", "--type", "pubkey",
            "--label", name, "--output-file", exported)
        # RSA comes out as DER, EdDSA as PEM: openssl reads either and writes PEM.
        with open(exported, "rb") as f:
            form = "PEM" if f.read(5) == b"-----" else "DER"
        return run("openssl", "pkey", "-pubin", "-inform", form, "-in", exported).stdout

    def uri(self, name):
        return f"pkcs11:token={self.label};object={name}"

    def write_pin(self, data_folder, pin=None, mode=0o600):
        path = os.path.join(data_folder, "hsm.pin")
        with open(path, "w") as f:
            f.write((pin or self.pin) + "\n")
        os.chmod(path, mode)

    def configure(self, data_folder):
        """Writes the PIN file into `data_folder`; returns the [pkcs11] section naming the token for its
        ledger.toml."""
        os.makedirs(data_folder, exist_ok=True)
        self.write_pin(data_folder)
        return f'[pkcs11]\nmodule = "{MODULE}"\npin_file = "hsm.pin"\n'
