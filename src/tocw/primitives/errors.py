"""Errors of the primitives layer.

The root and the shared leaves are defined here; errors that belong to one module are defined
next to it (named in brackets) and still descend from PrimitivesError:

PrimitivesError
├── ScaleError
│   ├── ScaleDecodeError          bytes are not a valid encoding of the expected type
│   │   ├── ExtrinsicDecodeError  [extrinsic] not a valid extrinsic for this runtime
│   │   └── EventsDecodeError     [events] not a valid System.Events value
│   └── ScaleEncodeError          a value cannot be encoded as the declared type
├── InvalidSs58Error              not a valid SS58 address (checksum, length, prefix)
├── InvalidKeyError               malformed key material, seed, mnemonic or derivation URI
├── InvalidSignatureError         a signature does not verify for the message and signer
├── InvalidCiphertextError        a shielded payload cannot be decrypted (length, padding, key)
├── InvalidHeaderError            [header] malformed header or block JSON
├── TrieError                     [trie] InvalidTrieNodeError, InvalidProofError
├── GrandpaError                  [grandpa] InvalidJustificationError, InvalidAuthoritySetError
├── MetadataError                 [metadata] MetadataDecodeError (UnsupportedMetadataVersion-
│                                 Error), UnknownNameError, UnsupportedTypeError
└── ExtrinsicBuildError           [extrinsic] UnsupportedSignedExtensionError
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
