"""Errors of the primitives layer.

PrimitivesError
├── ScaleError
│   ├── ScaleDecodeError   bytes are not a valid encoding of the expected type
│   └── ScaleEncodeError   a value cannot be encoded as the declared type
├── InvalidSs58Error       not a valid SS58 address (checksum, length, prefix)
├── InvalidKeyError        malformed key material, seed, mnemonic or derivation URI
├── InvalidSignatureError  a signature does not verify for the given message and signer
└── InvalidCiphertextError a shielded payload cannot be decrypted (length, padding, key)
"""


class PrimitivesError(Exception):
    """Root of every error raised by tocw.primitives."""


class ScaleError(PrimitivesError):
    pass


class ScaleDecodeError(ScaleError, ValueError):
    pass


class ScaleEncodeError(ScaleError, ValueError):
    pass


class InvalidSs58Error(PrimitivesError, ValueError):
    pass


class InvalidKeyError(PrimitivesError, ValueError):
    pass


class InvalidSignatureError(PrimitivesError):
    pass


class InvalidCiphertextError(PrimitivesError, ValueError):
    pass
