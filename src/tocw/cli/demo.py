"""`tocw demo`: the interim demo, showing the part of the workflow that exists today.

Until the dev chain, the worker and the client land, the demo runs the client's and the
enclave's halves of one indirect invocation in this process, with the real primitives and no
shortcuts: it generates a shielding key, has the client read it from its JSON form, builds and
signs `balance_transfer(//Alice -> //Bob)`, encrypts `TrustedOperation::indirect_call` into the
`Request` that `EnclaveBridge.invoke` carries, then decrypts, decodes and verifies it as the
enclave will, and prints the `trusted_calls_merkle_root` a worker would confirm. Negative checks
(tampered call, corrupted ciphertext) show the checks can fail. Exit code 0 only if every check
held.

There is no enclave measurement yet, so the MRENCLAVE (and the default shard, which equals it)
is random for each run and printed as such.
"""

from __future__ import annotations

import argparse
import dataclasses
import secrets
from collections.abc import Callable

from tocw.primitives.errors import InvalidCiphertextError, PrimitivesError
from tocw.primitives.hashing import blake2_256, trusted_calls_merkle_root
from tocw.primitives.keys import Keypair
from tocw.primitives.shielding import BLOCK_LEN, ShieldingKey, ShieldingPublicKey
from tocw.primitives.trusted import (
    BASE_CODECS,
    REQUEST_CODEC,
    BalanceTransfer,
    IndirectCall,
    Request,
    check_call_signature,
    sign_call,
)
from tocw.primitives.types import Balance, MrEnclave, Nonce, ShardId, to_hex

TRANSFER_VALUE = Balance(1_000_000_000_000)
FINAL_LINE = (
    "The full off-chain-worker workflow (dev chain, worker, on-chain invoke, confirmed "
    "blocks, trusted getters) arrives with the worker and client."
)

Out = Callable[[str], None]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the demo of what tocw can do today",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_demo(print)


class _Checks:
    """Records each check's outcome; the demo's exit code is whether all held."""

    def __init__(self, out: Out) -> None:
        self.out = out
        self.failed: list[str] = []

    def __call__(self, name: str, held: bool) -> bool:
        self.out(f"  [{'ok' if held else 'FAILED'}] {name}")
        if not held:
            self.failed.append(name)
        return held


def run_demo(out: Out) -> int:
    """Run the interim demo, writing lines to `out`; 0 if every check held, else 1."""
    check = _Checks(out)
    try:
        _demo(out, check)
    except PrimitivesError as e:
        # A primitive refusing our own well-formed data is a failed check, not a crash.
        check(f"unexpected {type(e).__name__}: {e}", False)
    out("")
    if check.failed:
        out(f"demo FAILED: {len(check.failed)} check(s) did not hold")
        return 1
    out("all checks held.")
    out(FINAL_LINE)
    return 0


def _demo(out: Out, check: _Checks) -> None:
    out("tocw demo (interim): one indirect invocation, client side and enclave side")
    out("")

    out("1. enclave: generate the shielding key (RSA-3072, OAEP SHA-256)")
    enclave_key = ShieldingKey.generate()
    key_json = enclave_key.public_key().to_json()
    out(f"   public key JSON: {len(key_json)} bytes, e = {enclave_key.public_key().e}")
    out(f"   modulus fingerprint sha256(n): {to_hex(enclave_key.public_key().fingerprint())}")

    out("2. client: read the key from its JSON form (as author_getShieldingKey returns it)")
    client_key = ShieldingPublicKey.from_json(key_json)
    check("client key equals enclave key", client_key == enclave_key.public_key())

    mrenclave = MrEnclave(secrets.token_bytes(32))
    shard = ShardId(bytes(mrenclave))
    out(f"   mrenclave = default shard: {to_hex(mrenclave)} (random: nothing is measured yet)")

    out("3. client: sign balance_transfer //Alice -> //Bob")
    alice, bob = Keypair.from_uri("//Alice"), Keypair.from_uri("//Bob")
    out(f"   from //Alice {alice.ss58_address}")
    out(f"   to   //Bob   {bob.ss58_address}")
    call = BalanceTransfer(from_=alice.account_id, to=bob.account_id, value=TRANSFER_VALUE)
    signed = sign_call(BASE_CODECS, call, Nonce(0), mrenclave, shard, alice)
    out(f"   value {TRANSFER_VALUE}, nonce 0, signed over call || nonce || mrenclave || shard")

    out("4. client: encrypt TrustedOperation::indirect_call into EnclaveBridge.invoke's Request")
    operation = BASE_CODECS.operation.encode(IndirectCall(signed))
    cyphertext = client_key.encrypt(operation)
    request = REQUEST_CODEC.encode(Request(shard, cyphertext))
    out(
        f"   operation {len(operation)} bytes -> ciphertext {len(cyphertext)} bytes "
        f"({len(cyphertext) // BLOCK_LEN} block) -> Request {len(request)} bytes"
    )

    out("5. enclave: decode the Request, decrypt, decode and verify the call")
    received = REQUEST_CODEC.decode(request)
    check("request is for our shard", received.shard == shard)
    decoded = BASE_CODECS.operation.decode(enclave_key.decrypt(received.cyphertext))
    check("decrypted operation equals what the client sent", decoded == IndirectCall(signed))
    valid = isinstance(decoded, IndirectCall) and check_call_signature(
        BASE_CODECS, decoded.signed, mrenclave, shard
    )
    check("signature verifies for //Alice", valid)

    out("6. enclave: refuse what it must refuse")
    tampered = dataclasses.replace(signed, call=dataclasses.replace(call, value=Balance(10**15)))
    check(
        "a call with a changed value fails the signature check",
        not check_call_signature(BASE_CODECS, tampered, mrenclave, shard),
    )
    check(
        "the same call under another shard fails the signature check",
        not check_call_signature(BASE_CODECS, signed, mrenclave, ShardId(bytes(32))),
    )
    corrupted = bytearray(cyphertext)
    corrupted[len(corrupted) // 2] ^= 0x01
    try:
        enclave_key.decrypt(bytes(corrupted))
        rejected = False
    except InvalidCiphertextError:
        rejected = True
    check("a ciphertext with one flipped bit is rejected", rejected)

    out("7. worker: the trusted_calls_merkle_root it would confirm for this block")
    leaf = BASE_CODECS.call_signed.encode(signed)
    out(f"   leaf blake2_256(SCALE(TrustedCallSigned)): {to_hex(blake2_256(leaf))}")
    out(f"   trusted_calls_merkle_root: {to_hex(trusted_calls_merkle_root([leaf]))}")
