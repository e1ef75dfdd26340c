"""Substrate trie: conformance vectors, real proofs, the incremental trie and read proofs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocw.primitives.errors import PrimitivesError
from tocw.primitives.hashing import blake2_256
from tocw.primitives.scale import Bytes, Vec
from tocw.primitives.trie import (
    EMPTY_TRIE_ROOT,
    InvalidProofError,
    InvalidTrieNodeError,
    NodeKind,
    Trie,
    TrieError,
    TrieNode,
    decode_node,
    encode_node,
    generate_proof,
    ordered_trie_root,
    trie_root,
    verify_proof,
)

# --- vectors ---------------------------------------------------------------------------------

# w3f/polkadot-tests fixtures/host-api/HostApiInputs.jl (value_1, value_2, value_3) and
# HostApiOutputs.jl value_value_value: ext_trie_blake2_256_ordered_root_version_1 (state v0).
HOST_API_VALUES = [
    ("static", "even-keeled", "Future-proofed"),
    ("Inverse", "Face to face", "Expanded"),
    ("even-keeled", "budgetary management", "pricing structure"),
    ("Future-proofed", "non-volatile", "emulation"),
    ("function", "Total", "Visionary"),
    ("Horizontal", "concept", "approach"),
    ("Face to face", "policy", "function"),
    ("Expanded", "context-sensitive", "Configurable"),
    ("Integrated", "hardware", "Automated"),
    ("portal", "object-oriented", "toolset"),
]
HOST_API_ORDERED_ROOTS = [
    "d847b86d0219a384d11458e829e9f4f4cce7e3cc2e6dcd0e8a6ad6f12c64a737",
    "ea32273c604a609a83979acc5dc5c19d91112967c5690d660684118fac03d087",
    "72b6aa1f07895b3276e215b192335b982268922f4e2973b3bab13102766a597c",
    "40f7e12565410189f5026d2d2c187fd60aa47cf943ae935cbda49e3b03fc1893",
    "f0b164f7a50de01338d0f0a8dae9e3806b72359e1b3bc9b38b1140172d1952a0",
    "922c3f9be4104e40daf22e249014ee0acd3e78870644cc131ce3107f6785e6c8",
    "652a6f8ecb5cf7f8ba6ba9390ba2bc2978d173c537954af52fcf6a1c72989cbf",
    "319fc284ac8e2d626ddec7b2e05948177ee2d8b3bb43820608e3faeab7c6e2b2",
    "aebac639ed629d66bdaae654454518b85274cf613e6100d1aa5c86996763ca11",
    "fd61ef3767be4899488dc3331726f3b9abaae1fc08532327631ece6198686e25",
]

# Same fixtures: key_value_1, key_value_2, key_value_3 inserted in that order, and
# key_value_key_value_key_value: ext_trie_blake2_256_root_version_1 (state v0).
HOST_API_KEY_VALUES = [
    (("static", "Inverse"), ("even-keeled", "Future-proofed"), ("static", "even-keeled")),
    (("function", "Horizontal"), ("Face to face", "Expanded"), ("function", "Face to face")),
    (
        ("Integrated", "portal"),
        ("budgetary management", "pricing structure"),
        ("Integrated", "budgetary management"),
    ),
    (("non-based", "Monitored"), ("non-volatile", "emulation"), ("non-based", "non-volatile")),
    (("productivity", "secondary"), ("Total", "Visionary"), ("productivity", "Total")),
    (("Exclusive", "next generation"), ("concept", "approach"), ("Exclusive", "concept")),
    (("disintermediate", "Grass-roots"), ("policy", "function"), ("disintermediate", "policy")),
    (
        ("contingency", "value-added"),
        ("context-sensitive", "Configurable"),
        ("contingency", "context-sensitive"),
    ),
    (("human-resource", "Reactive"), ("hardware", "Automated"), ("human-resource", "hardware")),
    (("Optional", "secondary"), ("object-oriented", "toolset"), ("Optional", "object-oriented")),
]
HOST_API_KEY_VALUE_ROOTS = [
    "1192e3ed48d28fba2eeae885fa367c535eca6a149eafad982265586902783d4f",
    "92aafcf31cc2012d7467fa96b47caa389762ef02e97c27c30484a7ffd4b3780e",
    "cbb9ff2393a9c8ce46f3592532f4c181339eedf979836e5d45b318633030a79e",
    "0ef6df228337099e666d402089c65e4c1d793ae0076dee4730baeb58404b0e16",
    "7ab4224ead96acf2282852d7bdfa71aac9c135ecb718024ff7fe15b19d4ab227",
    "ad2c33c6536d547f60a5947588e9bc953804a29b219a5692b7ed0e921d34c588",
    "c1029b1ceb237b33f1d1e99c82e8d00c687342ae373474d3d7f0ed0f3f278cd6",
    "cff475bc0c4aa0344ce0e0966415123ac4ef541122b1365be0884a3713c020cd",
    "b21b406c9f9c96bb84e2d890ec6d0212e5422f9098777f090cd9a90e510cf92c",
    "f81f2b3e8d50e95b706066afa4a9b07dfddeb89d1c3e8c4eb054d33a3de3b9bf",
]

# paritytech/smoldot lib/src/trie/proof_decode/tests.rs EXAMPLE_PROOF: a read proof (SCALE
# Vec<Vec<u8>> of nodes) against the Polkadot genesis state root (state version 0).
POLKADOT_GENESIS_PROOF = bytes.fromhex(
    "18d47d01542596adb05d6140c170ac479edf7cfd5aa35357590acfe5d11a804d944e500d1456fdda7b8ec7f9"
    "e5c794cd83194f0593e4ea3505803f93804e4c6c4222b747e507008ef1def063bb0d2deeadf17ef4b10e7162"
    "4d3a0cf81c80241f2c06f22ec58968fb68d432319e25e6c8faa3ad2c5ca9ee48f2e8ed158e2480ad8a682349"
    "32269846bc40240a47cfd8d8857b1d81e167bfb24c947a4cdad9e680c84590e39f8b79a2694ad2bf7e7258af"
    "686b472f38b064bbce7d08404931a430805c72f25b1b6304d16667e2766fa1a906cb081788eb4502787df7c3"
    "597412b17b806e21c5f1a24a196615b4e5b36d21280cdcc80098c1e2bce8eeaf301e9951767480424f1acd80"
    "ba074a2ce8d180bf3488a5ca91cb81fba96c8c3c1d33eacbb18160805e849d5c148ca361a55a2c9b384e17ce"
    "919e936ccb8011a4f72504e9f93db8cd80edd005a1495c70250d77f81c24c15a9919f034f7983df8e505e53a"
    "5af7b402138012a0dd90497b65312bda67ea15996578eeb3891bca8666951a326612418e3143b10480555d80"
    "43fb497c1b2a7b9e4feb59f410c1a29e28b2a628ff9c6003e080f6b9fadd95f9806e8d911b6818038eb7c853"
    "4af8e78e9920a1ab8d939c36d3e69b0a1e5928110b80ba4d3f543957f422b40c8e74af9de00acbeba8154afc"
    "a57a7f80fbbcfebb1e4a803d1b8f5cf1788b294537b8fd2d34acec4646a7627c6cd3d2039af64ff5d1976d80"
    "e7620f21cf13964f29d34ba708c3b44ea45ea11c58fbbedda29d13470bc80ca080f98aae4f83d81bf15d8801"
    "9e5c303d7c19d0524e84c714e05f61517cde0b138280d518faf566fdc4d045094abe372bb3bbecd4753f76db"
    "8c41ba9fc015558bf23a80908f991126d12ce7acd55508ff1e7dffa56f742401e1814fc1469658a78c7a7f80"
    "01b0a08da0c83253d5c0cb877286c062da2f530ae424fe2545377941fd016913350580b3a780a29fac7f7dfa"
    "e21d05d9506e7da6515b7fa1ad970ff876de35f1bec2599ec002805b6772dc6a4e7604c8d0652479f95b3436"
    "07c2d9138c59eeb799d85bf43b6bbf803d12becb6a4b9919ddc7c5973d04eed7696c834f90c779fc1fcf7350"
    "ccc28d6b805f33ebcf191fddcf3b3f346ec336c105c74b40a4d35dfda0c592f2bea00084e980f764c733d6e3"
    "5771a9b26a1fa86b9bec59742b046f698be6c140af1073897d3d80cd3bc8c3ce3cf8359f7371a13316f02fd2"
    "2b02a3d327684a2b61f4a47e0022b880da752afaeb925d5300e45b851052c5f8a9c5aae884f15d64764edf96"
    "1b8b22c880bf1fa9c7e4c94340dbafd75cbe016c980d0e5d5b4e76823fa11e61629014c34b804f54a15e5d51"
    "d02b84e8cae94c9833ae81e56b8f0b684d257f6f722ee66cadf98094833fb2dce8c78d443cd6786e0c01d897"
    "4a4b779c178ef5e66b49e021dd7f1ae1029f0c5d795d0297be56027a4b2464e33397609280f332ff556abf5d"
    "af0d34523df7c8cd1369bcb6adbb23a48093bf070a9711bf3480382934134aa919b59c16ff8de8d97a7fdcc2"
    "448ea327b26f44005d756d1785878081d634140b36ce031c4b6c6266e2a7c19d9a88e38fdd8ad23abd3db20e"
    "714f6980fde17041f22f09609d79dbe38dcccefcaac139c7a10fb23bd284c1c492b004fd80d287ad1d0ade65"
    "e64d3969f4ab85a37076816031438cea0bf8c33b7b2bc6c3308d089f03e6d3c1fb15805edfd024172ea4817d"
    "ffff80152833e34a852e9751cfc0f954aeb835e1f843936ba9979853a40e439937255f806a36e0ad23fb3224"
    "fff6e6db62048463a7f27ccb92f65b4e348acd5a7aa3a0688027b6e099c11581fb2e8acf3b6b94eaed442277"
    "b9a74ce7f922f6e3bf2959867b80fd0cc2c846db6a9ed19a715d6c3cd46a48b7f409883c70b2d4c978b306de"
    "379e80ab008a78c340f5cc75d99cdb905951936686445c834719be21f7620b950dcd5c806d86af54d5dfb1c0"
    "6f3fefdd5a430861c0d19e25fad4bad07c6e70d4a679f0b880f35edc5400b6661fb1e6fba7c599c8ba891458"
    "d14400030fa506999a1972369f80746cdaa0b7da2e9c3864971f50f12d9b4281f804d5a2dba6ebe06959b2a9"
    "fb47802ecfde11456423c87fed8068f414a5ba44ebe3ae91b06d14cc231a78d4aba68e80f655291833a49cf2"
    "3d057bb15c42d377c55d50f5885329060b0aaab22283cbb1808c95fb2b62baf30718b8330ef68a527c97c1bc"
    "9960304353224d8a8ae88a79d58045c1b6d9904ae171d573bdcebaa05142d81648bdbeb16ceeddc54a0ed15d"
    "3e2b80a8ea193282fe85b6481707091c77c9218ea19de914e75950925fe86400fb0cb080c222ceab5355eaa4"
    "1da807146f2e2df7ff648c3e8bbb6d8ee23274ba724551b18008f142dc3c59bf1151c829ecefea35919e8045"
    "3db5e9669f5a73899aaa5166ee804f1d21fbdc0180c4de886bf40f91dfc2202b3eb6d42548d476908041dd61"
    "7bb8"
)

POLKADOT_GENESIS_STATE_ROOT = bytes.fromhex(
    "29d0d972cd27cbc511e9589fcb7a4506d5eb6a9e8df205f00472e5ab354a4e17"
)
GENESIS_KEY = bytes.fromhex(
    "9c5d795d0297be56027a4b2464e3339763e6d3c1fb15805edfd024172ea4817d"
    "7081542596adb05d6140c170ac479edf7cfd5aa35357590acfe5d11a804d944e"
)
GENESIS_VALUE = bytes.fromhex("0d1456fdda7b8ec7f9e5c794cd83194f0593e4ea")

# A state-version-1 read proof from a live chain: smoldot lib/src/trie/proof_decode/
# issue_2035_proof (state root in that file's test `issue_2035`), cut down to the path of one
# key whose 51-byte value is stored hashed; the last entry is that raw value, as sp-trie's
# recorder includes it.
V1_ROOT = bytes.fromhex("f72fa98efbf23c21d162a6690a2412d0b2e3d2e769cab46a7eb6004138ebeda7")
V1_KEY = bytes.fromhex(
    "63f78c98723ddc9073523ef3beefda0ca95dac46c07a40d91506e7637ec4ba5756ee3538cfd62cb8170d0000"
)
V1_PROOF = [
    bytes.fromhex(h)
    for h in (
        (
            "80ffff80a733a24fa43818b82e4536f8ca1bc8dac81b440556f63c99f40d2dc5f59a7bf8805bcf87df3b1255"
            "6d93359afde586f72d5f7ff200aeee1596365a81f9e654efca8077ea133e966fc054389a837e13fff0c11fad"
            "961c30e7b7a91b52c421777557908076d76397d091bc1d403fe2eb9885268285b232dd7a26b11271e9a3ca37"
            "f9cbee8056c83873cbce458e1bd83950e65b64c8a64f726f9cd5a90ffe883bd6c940e4a880ccd7a12be113ec"
            "921427c8063206ea52f3d8410fb834d68fe92e1c62a1b7769380e505e75019a43d90c85001da3db4cbabb768"
            "21b3c397fa71d22c8db5a4ac6db180a083a2b0276089158f6f2ab29b40d5d752f97ed2b60940eca058b37921"
            "9673d6807c3d38cdfd7a875bc147bdef86227c7a9ab96ca7a6069f7db9060d4adcc1957a808801dbc0198e66"
            "0eb7299dad04d78bd315b26633900c94c94a6208b465d939238043e33b3464844af9a8ca5d90a74025d063b7"
            "c8abc972552fc6dd4bee00ae1f0a801892b89750d2e97f0040826b07effd5d196742c0e03706da0b347ee024"
            "577d8a800c40cb68923ed29f948f32cf06fe9f8c8e112782ca3dbe74c1c23483bd393f5980f05206165191ab"
            "9342ad78cc811f2c5041f3cd225b89d3c0f7a1f3c2ac89c60180872737c380169a28d63974bebcf544544911"
            "9a73bd2af4ae1983d5e7070ba39e80c090975fc02c93dbf56c22656789e68336bb700e7b70348a3037cd1763"
            "3214f0"
        ),
        (
            "80880580a2594e56ad1daea0faa8d338212a1949601d289718b4321d77d72b952eaded28804192145190e1ec"
            "eeaa03841737caddbb50225426bcc9362eb5a71a3ca91c7bce8093617f28e050965a14e7f7a625faf4a2fc18"
            "87d468374e9be51b794c0adfd8b780d3242777bf9460be2b23bccf5547db97066ad783e5506120e619ccc5d6"
            "2a707e"
        ),
        (
            "8000818027aa9585d27276a57efb52577204146bf2cd0be8269dea2e7a0956a39ef40a1b801b31ec2569c532"
            "278b68bd9fa31a691e7f2b7b4af449badd7f385c2f97a20d5d"
        ),
        (
            "9d078c98723ddc9073523ef3beefda0c104480e218944c753cd37790df3032b975276c1308d1da11c06da9ec"
            "5aa18175fe41388061371548d7942a01c0f14ac5ce8186b3b9ca108fba28dd4dfef77efc9e9f6baa80ee1637"
            "d59c26f67a52b8d0f0fcf38c1878fb381ec474c5e2d2e6225bf12aafaa"
        ),
        (
            "9f095dac46c07a40d91506e7637ec4ba57ffff8095b4130990646fee4a2b99d9d41ad0c788cd0e8fae90db1c"
            "a487c9a66b1a12e83c57060394315fe95b98f30700000400807ea193968bf9197f2de50b3f952fab81f797ff"
            "9f68ddc5e7b913bf1c2fd157ad806609e1032b7dcb02c4b4eff9044214313c86ab3ba96bd38c096e8c009c60"
            "360c804ee5907a5affa17085454047930065fb2fedeb5ded966e2c61be23aba965b33f80bd8cae421d73c94a"
            "9fffb9dba37f49240cdf733eee529b20340449862ccb516e80c4305d4f7a04fcd97e0ca89300be2a301aabfc"
            "99d5567b560ee8fb5009c72dd880f0983ef369066eef18b27c198acadced43427880e649fc990c56af0dc22f"
            "d6ba80bcab958b811d3385497541063e82a8dbffb897676a6e9f46a02805e3f7ceee1f80f4cac68abff4d33b"
            "25fffcafe308069a980c27650be463a8eacf5f4b9a5462e680f9a4ea5900d7d0d96b816f417e42838ad425dd"
            "34f32b5a6d0196de6fc589dc888073ce4366691338bb759bac3cdcf0f79416bdcf7edea89881a2b29ad91ab1"
            "9a27803f90741eb66611247ae7acdd944fb9c67a9080994af102149135f2f62b7390c380457586f15290c89b"
            "692cb4954ea7a2fd567df5673fecd2b243bf72f3af3223813c570bdb9c0b8c73ab9e3c0d00000400800effd3"
            "a1d698b053089b405e6bd8b3f966d5f803d3d3fa6851c10d0aa4ac4216"
        ),
        (
            "804080800d605bdef7453a1edccb6595bbed84998a8872136f3b210f6a1254bf269d2c4c38569d7e46afdef8"
            "38d80700000400"
        ),
        (
            "36ee3538cfd62cb8170d00000f65de73629ad9f65508153c4fe7d47294794f7d3cfba31dd94126b29f138c71"
        ),
        (
            "0403de3701b40308030003040000000000002c23d93e6a534de64470ba0cb98e6c61e610d41d624689de256a"
            "a47420a66dd439"
        ),
    )
]


def _kv(pairs: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in pairs]


# --- conformance vectors ---------------------------------------------------------------------


def test_trie_root_empty_is_blake2_of_zero_byte() -> None:
    """The empty trie's root is blake2_256(0x00) in both state versions."""
    assert blake2_256(b"\x00") == EMPTY_TRIE_ROOT
    assert trie_root([], 0) == trie_root({}, 1) == Trie().root() == EMPTY_TRIE_ROOT


@pytest.mark.parametrize("index", range(10))
def test_ordered_trie_root_host_api_fixture(index: int) -> None:
    """ext_trie_blake2_256_ordered_root_version_1 vectors of w3f/polkadot-tests."""
    values = [v.encode() for v in HOST_API_VALUES[index]]
    assert ordered_trie_root(values, state_version=0).hex() == HOST_API_ORDERED_ROOTS[index]
    assert ordered_trie_root(values) == ordered_trie_root(values, state_version=0)  # the default


@pytest.mark.parametrize("index", range(10))
def test_trie_root_host_api_fixture(index: int) -> None:
    """ext_trie_blake2_256_root_version_1 vectors: the later insert of a key overwrites."""
    items = _kv(HOST_API_KEY_VALUES[index])
    assert trie_root(items, state_version=0).hex() == HOST_API_KEY_VALUE_ROOTS[index]


def test_trie_root_smoldot_examples() -> None:
    """smoldot lib/src/trie.rs trie_root_example_v0_blake2 and _v1_blake2 vectors."""
    v0 = trie_root([(b"foo", b"bar"), (b"foobar", b"baz")], 0)
    assert v0.hex() == "a61820b5fba9b01aee10b5bbd84aea80b8230318c5e8ca14b9a4940c76e09815"
    v1 = trie_root([(b"bar", b"foo"), (b"barfoo", b"hello"), (b"anotheritem", b"anothervalue")], 1)
    assert v1.hex() == "441807c345ca7adf88bd21ab1b3cbadb15616abb89167eb9fe285dd5cecd04c8"


def test_trie_root_short_values_agree_across_versions() -> None:
    """Values under 33 bytes are stored inline in both versions, so the roots agree."""
    items = [(bytes([i, i]), bytes(32) + b"") for i in range(40)] + [(b"", b"x" * 31)]
    assert trie_root(items, 0) == trie_root(items, 1)


def test_trie_root_v1_hashes_values_of_33_bytes_or_more() -> None:
    """The spec's v1 leaf: header 0b001|len, partial key, blake2_256(value) (no length)."""
    value = bytes(range(33))
    # key 0x01 = nibbles 0,1: even length, so the partial key is the byte itself.
    v1_leaf = bytes([0b0010_0000 | 2, 0x01]) + blake2_256(value)
    v0_leaf = bytes([0b0100_0000 | 2, 0x01, 33 << 2]) + value
    assert trie_root({b"\x01": value}, 1) == blake2_256(v1_leaf)
    assert trie_root({b"\x01": value}, 0) == blake2_256(v0_leaf)
    assert trie_root({b"\x01": value[:32]}, 1) == trie_root({b"\x01": value[:32]}, 0)


def test_trie_root_v1_branch_with_hashed_value() -> None:
    """The spec's v1 branch: header 0b0001|len (4 bits), partial, bitmap, hash, children."""
    value = b"V" * 40
    child = bytes([0x40 | 1, 0x02, 1 << 2]) + b"c"  # leaf, partial nibble 2, value "c"
    # keys 0x01 and 0x0102: the branch holds partial "01"; the child hangs at nibble 0.
    branch = bytes([0x10 | 2, 0x01, 0x01, 0x00]) + blake2_256(value)
    branch += bytes([len(child) << 2]) + child
    assert trie_root({b"\x01": value, b"\x01\x02": b"c"}, 1) == blake2_256(branch)
    assert decode_node(branch).value_hashed


def test_trie_root_long_partial_key_header() -> None:
    """A 63-nibble partial key needs the extension byte 0x00 after the capped header."""
    key = bytes(range(32))  # 64 nibbles; a lone leaf carries all of them
    leaf = bytes([0x40 | 63, 64 - 63]) + key + bytes([1 << 2, 7])
    assert trie_root({key: b"\x07"}, 0) == blake2_256(leaf)
    node = decode_node(leaf)
    assert node.partial_key == key.hex() and encode_node(node) == leaf


# --- real proofs -----------------------------------------------------------------------------


def test_verify_proof_polkadot_genesis() -> None:
    """smoldot's Polkadot-genesis proof: a present key, an absent one, an unproven one."""
    proof = Vec(Bytes).decode(POLKADOT_GENESIS_PROOF)
    absent = GENESIS_KEY + b"\x25"
    got = verify_proof(POLKADOT_GENESIS_STATE_ROOT, proof, [GENESIS_KEY, absent])
    assert got == {GENESIS_KEY: GENESIS_VALUE, absent: None}
    unproven = bytes.fromhex("9c5d795d0297be56027a4b2464e3339763e6d3c1fb15805edfd024172ea4817d7000")
    with pytest.raises(InvalidProofError, match="lacks the node"):
        verify_proof(POLKADOT_GENESIS_STATE_ROOT, proof, [unproven])


def test_verify_proof_real_state_version_1() -> None:
    """A live chain's v1 proof: the leaf holds the value's hash, the proof the value."""
    got = verify_proof(V1_ROOT, V1_PROOF, [V1_KEY])
    value = V1_PROOF[-1]
    assert got == {V1_KEY: value}
    leaf = decode_node(V1_PROOF[-2])
    assert leaf.kind is NodeKind.LEAF and leaf.value_hashed and leaf.value == blake2_256(value)
    with pytest.raises(InvalidProofError, match="hashed value"):
        verify_proof(V1_ROOT, V1_PROOF[:-1], [V1_KEY])


def test_decode_node_real_nodes_round_trip() -> None:
    """Every node of both real proofs re-encodes to the same bytes (canonical codec)."""
    nodes = [*Vec(Bytes).decode(POLKADOT_GENESIS_PROOF), *V1_PROOF[:-1]]
    for enc in nodes:
        assert encode_node(decode_node(enc)) == enc


# --- node codec robustness -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing
        b"\x00\x00",  # empty node with trailing byte
        b"\x01",  # reserved header
        b"\x0f\x00",  # reserved header
        b"\x41\x10\x04\x07",  # odd partial key with non-zero padding nibble
        b"\x80\x00\x00",  # branch without children
        b"\x42\x01",  # leaf cut inside the partial key
        b"\x42\x01\x23\x08\x07",  # leaf value shorter than announced
        b"\x42\x01\x23\x04\x07\x00",  # trailing byte
        b"\x80\x01\x00\x84" + bytes(33),  # child reference over 32 bytes
        b"\x7f" + b"\xff" * 300,  # partial-key length past the bound
    ],
)
def test_decode_node_garbage_raises_typed_error(data: bytes) -> None:
    """Malformed or non-canonical encodings raise InvalidTrieNodeError, nothing else."""
    with pytest.raises(InvalidTrieNodeError):
        decode_node(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_decode_node_random_bytes(data: bytes) -> None:
    """Arbitrary bytes either decode to a node that re-encodes identically or raise typed."""
    try:
        node = decode_node(data)
    except InvalidTrieNodeError:
        return
    assert encode_node(node) == data


def test_encode_node_rejects_inconsistent_nodes() -> None:
    """encode_node refuses shapes decode_node could never produce."""
    with pytest.raises(TrieError):
        encode_node(TrieNode(NodeKind.LEAF, "1"))
    with pytest.raises(TrieError):
        encode_node(TrieNode(NodeKind.BRANCH, "", b"v"))
    with pytest.raises(TrieError):
        encode_node(TrieNode(NodeKind.LEAF, "xy", b"v"))


# --- the incremental trie --------------------------------------------------------------------

_keys = st.binary(max_size=4).map(lambda b: bytes(x & 0x31 for x in b))  # many shared prefixes
_values = st.sampled_from([0, 1, 5, 32, 33, 60]).flatmap(
    lambda n: st.binary(min_size=n, max_size=n)
)
_ops = st.lists(st.tuples(st.booleans(), _keys, _values), max_size=40)


@settings(max_examples=200, deadline=None)
@given(_ops, st.sampled_from([0, 1]))
def test_trie_incremental_root_matches_one_shot(
    ops: list[tuple[bool, bytes, bytes]], v: int
) -> None:
    """After random inserts and removes, root/items/len/get agree with a rebuilt trie."""
    trie = Trie(v)
    model: dict[bytes, bytes] = {}
    for is_insert, key, value in ops:
        if is_insert:
            trie.insert(key, value)
            model[key] = value
        else:
            assert trie.remove(key) == model.pop(key, None)
        trie.root()  # interleave hashing so cached hashes must stay correct
    assert trie.root() == trie_root(model, v) == Trie.from_items(model, v).root()
    assert list(trie.items()) == sorted(model.items())
    assert len(trie) == len(model)
    for key, value in model.items():
        assert trie.get(key) == value


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(_keys, _values, max_size=30),
    st.lists(_keys, max_size=6),
    st.sampled_from([0, 1]),
)
def test_generate_proof_verifies_present_and_absent(
    items: dict[bytes, bytes], keys: list[bytes], v: int
) -> None:
    """A generated proof answers every asked key, present or absent, like the trie does."""
    trie = Trie.from_items(items, v)
    asked = [*keys, *list(items)[:3]]
    proof = generate_proof(trie, asked)
    assert verify_proof(trie.root(), proof, asked) == {k: items.get(k) for k in asked}


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(_keys, _values, min_size=1, max_size=30),
    st.lists(_keys, min_size=1, max_size=4),
    st.data(),
)
def test_verify_proof_tampered_or_missing_entry_fails(
    items: dict[bytes, bytes], keys: list[bytes], data: st.DataObject
) -> None:
    """Changing one byte of, or dropping, any proof entry makes verification fail."""
    trie = Trie.from_items(items, 1)
    proof = generate_proof(trie, keys)
    i = data.draw(st.integers(0, len(proof) - 1))
    entry = proof[i]
    j = data.draw(st.integers(0, len(entry) - 1))
    tampered = [*proof[:i], entry[:j] + bytes([entry[j] ^ 0x01]) + entry[j + 1 :], *proof[i + 1 :]]
    with pytest.raises(InvalidProofError):
        verify_proof(trie.root(), tampered, keys)
    with pytest.raises(InvalidProofError):
        verify_proof(trie.root(), proof[:i] + proof[i + 1 :], keys)


def test_verify_proof_empty_trie_and_wrong_root() -> None:
    """The empty root proves every key absent; a root the proof lacks is an error."""
    assert verify_proof(EMPTY_TRIE_ROOT, [], [b"a"]) == {b"a": None}
    assert verify_proof(EMPTY_TRIE_ROOT, generate_proof(Trie(), [b"a"]), [b"a"]) == {b"a": None}
    proof = generate_proof({b"a": b"1"}, [b"a"])
    with pytest.raises(InvalidProofError, match="root"):
        verify_proof(bytes(32), proof, [b"a"])
    with pytest.raises(InvalidProofError):
        verify_proof(b"short", proof, [b"a"])


def test_verify_proof_inline_root() -> None:
    """A root node under 32 bytes is still hashed and must be in the proof."""
    trie = Trie.from_items({b"k": b"v"})
    proof = generate_proof(trie, [b"k"])
    assert proof == [bytes([0x42, 0x6B, 0x04, 0x76])]
    assert verify_proof(trie.root(), proof, [b"k", b"j"]) == {b"k": b"v", b"j": None}


def test_trie_proof_includes_hashed_value_only_for_asked_key() -> None:
    """v1 value entries are added for the asked keys only, not for values passed by."""
    big_a, big_b = b"A" * 40, b"B" * 40
    trie = Trie.from_items({b"\x01": big_a, b"\x01\x02": big_b}, 1)
    proof = generate_proof(trie, [b"\x01\x02"])
    assert big_b in proof and big_a not in proof
    assert verify_proof(trie.root(), proof, [b"\x01\x02"]) == {b"\x01\x02": big_b}
    with pytest.raises(InvalidProofError, match="hashed value"):
        verify_proof(trie.root(), proof, [b"\x01"])


def test_trie_copy_is_independent() -> None:
    """A copy shares nodes but later changes to either side do not leak to the other."""
    base = Trie.from_items({bytes([i]): bytes([i]) * 40 for i in range(50)})
    root = base.root()
    copy = base.copy()
    copy.insert(b"\x07", b"changed")
    copy.remove(b"\x08")
    assert base.root() == root and base.get(b"\x07") == b"\x07" * 40 and b"\x08" in base
    assert copy.root() == trie_root(dict(copy.items()))
    assert len(base) == 50 and len(copy) == 49


def test_trie_remove_restores_previous_root() -> None:
    """Inserting then removing a key gives back the previous root (branches collapse)."""
    trie = Trie.from_items({b"abc": b"1", b"abd": b"2", b"b": b"3"}, 0)
    before = trie.root()
    for key in (b"ab", b"abcd", b"a", b"", b"abc\x00"):
        trie.insert(key, b"x")
        assert trie.root() != before
        assert trie.remove(key) == b"x"
        assert trie.root() == before
    assert trie.remove(b"zz") is None


def test_trie_items_prefix_and_keys() -> None:
    """items(prefix) yields exactly the sorted entries under the prefix."""
    items = {b"ab": b"1", b"abc": b"2", b"ac": b"3", b"b": b"4", b"": b"5"}
    trie = Trie.from_items(items)
    assert list(trie.items()) == sorted(items.items())
    assert list(trie.keys(b"ab")) == [b"ab", b"abc"]
    assert list(trie.items(b"abcd")) == []
    assert list(trie.keys(b"a")) == [b"ab", b"abc", b"ac"]


def test_trie_node_encodings_hold_every_stored_node() -> None:
    """node_encodings() is a database from which any key can be proven."""
    items = {bytes([i, j]): bytes([i]) * (j + 1) * 3 for i in range(8) for j in range(8)}
    trie = Trie.from_items(items)
    db = list(trie.node_encodings())
    assert verify_proof(trie.root(), db, list(items)) == items


def test_trie_rejects_bad_input() -> None:
    """Non-bytes keys or values and unknown state versions raise TrieError (a PrimitivesError)."""
    trie = Trie()
    with pytest.raises(TrieError):
        trie.insert("key", b"v")  # type: ignore[arg-type]
    with pytest.raises(TrieError):
        trie.insert(b"k", 5)  # type: ignore[arg-type]
    with pytest.raises(TrieError):
        Trie(state_version=2)
    with pytest.raises(PrimitivesError):
        trie.get(b"\x00" * 40_000)


def test_trie_from_items_last_duplicate_wins() -> None:
    """Like repeated inserts, a later pair for the same key overwrites an earlier one."""
    trie = Trie.from_items([(b"k", b"1"), (b"k", b"2")])
    assert trie.get(b"k") == b"2" and len(trie) == 1
