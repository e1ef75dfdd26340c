"""The dev chain's JSON-RPC, sans-I/O: frames in, frames out, against a real in-memory chain."""

from __future__ import annotations

import json
from typing import Any

from tocw.chain.rpc_methods import MAX_SUBSCRIPTIONS_PER_CONNECTION
from tocw.chain.storage import MIN_STATE_WINDOW
from tocw.chain.testing import RpcHarness as Rig
from tocw.chain.testing import rpc_harness
from tocw.primitives.grandpa import GrandpaJustification
from tocw.primitives.hashing import blake2_128_concat, blake2_256, storage_key, storage_prefix
from tocw.primitives.header import header_from_json
from tocw.primitives.keys import Keypair
from tocw.primitives.scale import U32
from tocw.rpc.messages import ErrorResponse, Limits, Notification, SuccessResponse, parse_outgoing

UNIT = 10**12


def hx(data: bytes) -> str:
    return "0x" + data.hex()


def account_key(who: bytes) -> bytes:
    return storage_key("System", "Account", (blake2_128_concat, who))


# ---- framing ----------------------------------------------------------------------------------


def test_rpc_parse_error_keeps_session(rig: Rig) -> None:
    """Malformed JSON gets -32700 with a null id; the session answers the next request."""
    (reply,) = rig.session.handle("{nope")
    assert json.loads(reply)["error"]["code"] == -32700
    assert json.loads(reply)["id"] is None
    assert rig.result("system_chain") == "Development"


def test_rpc_invalid_requests(rig: Rig) -> None:
    """Wrong jsonrpc version, non-string method, scalar frames and empty batches: -32600."""
    for frame in (
        '{"id":1,"method":"system_chain"}',
        '{"jsonrpc":"2.0","id":1,"method":5}',
        "3",
        "[]",
    ):
        (reply,) = rig.session.handle(frame)
        assert json.loads(reply)["error"]["code"] == -32600, frame


def test_rpc_unknown_method(rig: Rig) -> None:
    """An unknown method is -32601 and names the method."""
    error = rig.error("nope_nothing")
    assert error == {"code": -32601, "message": "Method not found", "data": "nope_nothing"}


def test_rpc_notification_gets_no_reply(rig: Rig) -> None:
    """A request without id is a notification: no answer, even for errors."""
    assert rig.session.handle('{"jsonrpc":"2.0","method":"system_chain","params":[]}') == []
    assert rig.session.handle('{"jsonrpc":"2.0","method":"nope","params":[]}') == []


def test_rpc_batch(rig: Rig) -> None:
    """A batch gets one array of answers in one frame; notifications in it are skipped."""
    frame = json.dumps(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "system_name", "params": []},
            {"jsonrpc": "2.0", "method": "system_name", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "nope", "params": []},
        ]
    )
    (reply,) = rig.session.handle(frame)
    answers = json.loads(reply)
    assert answers[0] == {"jsonrpc": "2.0", "result": "tocw", "id": 1}
    assert answers[1]["error"]["code"] == -32601 and answers[1]["id"] == 2
    too_big = json.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": "system_name"} for i in range(1001)]
    )
    assert json.loads(rig.session.handle(too_big)[0])["error"]["code"] == -32010


def test_rpc_frames_are_tocw_rpc_wire_messages(rig: Rig, alice: Keypair, bob: Keypair) -> None:
    """Every frame the session sends parses with tocw.rpc's client parser: results, errors
    and subscription pushes (one serializer for the whole project)."""
    xt = hx(rig.transfer(alice, bob.public_key, UNIT))
    request = {"jsonrpc": "2.0", "id": 7, "method": "author_submitAndWatchExtrinsic"}
    replies = rig.session.handle(json.dumps({**request, "params": [xt]}))
    response, ready = (parse_outgoing(r) for r in replies)
    assert isinstance(response, SuccessResponse) and response.id == 7
    assert isinstance(ready, Notification) and ready.method == "author_extrinsicUpdate"
    assert ready.params == {"subscription": response.result, "result": "ready"}
    (error,) = rig.session.handle('{"jsonrpc":"2.0","id":"x","method":"nope","params":[]}')
    parsed = parse_outgoing(error)
    assert isinstance(parsed, ErrorResponse) and parsed.id == "x"
    assert parsed.error.code == -32601 and parsed.error.data == "nope"


def test_rpc_params_must_be_an_array(rig: Rig) -> None:
    """Named params are -32602 (Substrate's methods are positional); null params are an
    invalid request, as JSON-RPC 2.0 says; a notification with bad params gets no answer."""
    (named,) = rig.session.handle('{"jsonrpc":"2.0","id":1,"method":"system_chain","params":{}}')
    assert json.loads(named)["error"]["code"] == -32602
    (null,) = rig.session.handle('{"jsonrpc":"2.0","id":2,"method":"system_chain","params":null}')
    assert json.loads(null)["error"]["code"] == -32600 and json.loads(null)["id"] == 2
    assert rig.session.handle('{"jsonrpc":"2.0","method":"system_chain","params":{}}') == []


def test_rpc_session_limits_size_batch_and_depth(rig: Rig) -> None:
    """The session's Limits: a frame over max_size is -32007, a batch over max_batch -32010,
    nesting deeper than max_depth a parse error; each answered, the session stays usable."""
    pushed: list[str] = []
    small = rig.api.session(pushed.append, limits=Limits(max_size=200, max_batch=2, max_depth=4))
    frame = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "state_getStorage", "params": ["0x" + "00" * 100]}
    )
    assert json.loads(small.handle(frame)[0])["error"]["code"] == -32007
    batch = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "system_name"} for i in range(3)])
    too_big = json.loads(small.handle(batch)[0])
    assert too_big["error"] == {
        "code": -32010,
        "message": "The batch request was too large",
        "data": "limit is 2",
    }
    deep = '{"jsonrpc":"2.0","id":1,"method":"system_chain","params":[[[[[1]]]]]}'
    assert json.loads(small.handle(deep)[0])["error"]["code"] == -32700
    ok = small.handle('{"jsonrpc":"2.0","id":9,"method":"system_chain","params":[]}')
    assert json.loads(ok[0]) == {"jsonrpc": "2.0", "result": "Development", "id": 9}


def test_rpc_unserializable_result_is_an_internal_error(rig: Rig) -> None:
    """A handler bug that returns something JSON cannot carry costs one request (-32603),
    not the connection."""
    rig.api.methods["test_bytes"] = lambda api, session, params: b"raw"
    error = rig.error("test_bytes")
    assert error["code"] == -32603 and "test_bytes" in error["data"]
    assert rig.result("system_chain") == "Development"


def test_rpc_methods_lists_what_clients_probe(rig: Rig) -> None:
    """rpc_methods lists state_call and account_nextIndex (clients decide paths on them)."""
    methods = rig.result("rpc_methods")["methods"]
    for name in (
        "state_call",
        "account_nextIndex",
        "author_submitAndWatchExtrinsic",
        "chain_subscribeFinalizedHeads",
        "chain_unsubscribeFinalizedHeads",
        "state_getReadProof",
        "grandpa_subscribeJustifications",
    ):
        assert name in methods


# ---- chain ------------------------------------------------------------------------------------


def test_rpc_chain_queries(rig: Rig) -> None:
    """getBlockHash by number, hex, list and default; headers; unknown hashes are null."""
    rig.produce()
    h0, h1 = rig.chain.block_hash(0), rig.chain.block_hash(1)
    assert h0 is not None and h1 is not None
    assert rig.result("chain_getBlockHash", 0) == hx(h0)
    assert rig.result("chain_getBlockHash", "0x1") == hx(h1)
    assert rig.result("chain_getBlockHash", [0, 1, 7]) == [hx(h0), hx(h1), None]
    assert rig.result("chain_getBlockHash") == hx(h1)
    assert rig.result("chain_getHead") == hx(h1)
    header = rig.result("chain_getHeader")
    assert header["number"] == "0x1" and header["parentHash"] == hx(h0)
    assert header_from_json(header).hash() == h1
    assert rig.result("chain_getHeader", hx(b"\x07" * 32)) is None
    assert rig.result("chain_getBlock", hx(b"\x07" * 32)) is None
    assert rig.error("chain_getBlockHash", "zz")["code"] == -32602
    assert rig.error("chain_getHeader", "0x1234")["code"] == -32602


def test_rpc_block_has_justification_once_finalized(rig: Rig) -> None:
    """chain_getBlock: justifications null before finality, a FRNK proof after."""
    rig.produce()
    h1 = rig.chain.block_hash(1)
    assert h1 is not None
    block = rig.result("chain_getBlock", hx(h1))
    assert block["justifications"] is None
    assert len(block["block"]["extrinsics"]) == 1  # the timestamp inherent
    rig.chain.finalize_next()
    assert rig.result("chain_getFinalizedHead") == hx(h1)
    assert rig.result("chain_getFinalisedHead") == hx(h1)
    ((engine, data),) = rig.result("chain_getBlock", hx(h1))["justifications"]
    assert engine == list(b"FRNK")
    justification = GrandpaJustification.decode(bytes(data))
    assert justification.commit.target_hash == h1 and justification.commit.target_number == 1


def test_rpc_head_subscriptions(rig: Rig) -> None:
    """New/finalized head subscriptions start with the current head, then follow the chain."""
    new_id = rig.result("chain_subscribeNewHeads")
    fin_id = rig.result("chain_subscribeFinalizedHeads")
    first = rig.notifications("chain_newHead")
    assert first[0]["params"] == {"subscription": new_id, "result": rig.result("chain_getHeader")}
    assert rig.notifications("chain_finalizedHead")[0]["params"]["subscription"] == fin_id
    rig.produce()
    assert rig.notifications("chain_newHead")[-1]["params"]["result"]["number"] == "0x1"
    rig.chain.finalize_next()
    assert rig.notifications("chain_finalizedHead")[-1]["params"]["result"]["number"] == "0x1"
    assert rig.result("chain_unsubscribeNewHeads", new_id) is True
    assert rig.result("chain_unsubscribeNewHeads", new_id) is False
    before = len(rig.notifications("chain_newHead"))
    rig.produce()
    assert len(rig.notifications("chain_newHead")) == before


def test_rpc_subscription_cap_per_connection(rig: Rig) -> None:
    """Past the cap a subscription is refused with -32006; the connection stays usable."""
    for _ in range(MAX_SUBSCRIPTIONS_PER_CONNECTION):
        rig.result("chain_subscribeAllHeads")
    assert rig.error("chain_subscribeAllHeads")["code"] == -32006
    assert rig.result("system_health")["peers"] == 0


def test_rpc_http_session_refuses_subscriptions(rig: Rig) -> None:
    """Over HTTP there is no push channel: subscriptions are refused, calls work."""
    http = rig.api.session(None)
    reply = json.loads(
        http.handle('{"jsonrpc":"2.0","id":1,"method":"chain_subscribeNewHeads","params":[]}')[0]
    )
    assert reply["error"]["code"] == -32601
    ok = json.loads(http.handle('{"jsonrpc":"2.0","id":2,"method":"system_chain","params":[]}')[0])
    assert ok["result"] == "Development"


# ---- state ------------------------------------------------------------------------------------


def test_rpc_state_storage_and_keys(rig: Rig, alice: Keypair) -> None:
    """getStorage/Hash/Size, getKeys and paging, queryStorageAt over System.Account."""
    key = account_key(alice.public_key)
    value = rig.result("state_getStorage", hx(key))
    assert value is not None
    raw = bytes.fromhex(value[2:])
    assert rig.result("state_getStorageAt", hx(key), rig.result("chain_getHead")) == value
    assert rig.result("state_getStorageHash", hx(key)) == hx(blake2_256(raw))
    assert rig.result("state_getStorageSize", hx(key)) == len(raw)
    assert rig.result("state_getStorage", hx(b"\xff" * 40)) is None
    prefix = storage_prefix("System", "Account")
    keys = rig.result("state_getKeys", hx(prefix))
    assert hx(key) in keys and keys == sorted(keys) and len(keys) >= 6
    page = rig.result("state_getKeysPaged", hx(prefix), 2, keys[0])
    assert page == keys[1:3]
    assert rig.error("state_getKeysPaged", hx(prefix), 1001)["code"] == 4002
    (change_set,) = rig.result("state_queryStorageAt", [hx(key), hx(b"\xff" * 40)])
    assert change_set["changes"] == [[hx(key), value], [hx(b"\xff" * 40), None]]


def test_rpc_state_unknown_and_discarded_blocks() -> None:
    """State at an unknown hash and at a pruned block: 4003 with Substrate's wording."""
    with rpc_harness(state_window=MIN_STATE_WINDOW) as rig:
        check_unknown_and_discarded(rig)


def check_unknown_and_discarded(rig: Rig) -> None:
    error = rig.error("state_getStorage", "0x00", hx(b"\x09" * 32))
    assert error["code"] == 4003 and "Header was not found" in error["message"]
    genesis = rig.chain.genesis_hash
    for _ in range(rig.chain.store.state_window):
        rig.produce()
    error = rig.error("state_getStorage", "0x00", hx(genesis))
    assert error["code"] == 4003
    assert error["message"] == (
        "Client error: Api called for an unknown Block: State already discarded for " + hx(genesis)
    )
    assert rig.result("chain_getHeader", hx(genesis))["number"] == "0x0"  # blocks stay


def test_rpc_state_call(rig: Rig, alice: Keypair) -> None:
    """state_call reaches the runtime APIs; unknown functions get Substrate's exact text."""
    nonce = rig.result("state_call", "AccountNonceApi_account_nonce", hx(alice.public_key))
    assert nonce == hx(U32.encode(0))
    assert rig.result("state_call", "Metadata_metadata_at_version", hx(U32.encode(15))) == "0x00"
    v14 = rig.result("state_call", "Metadata_metadata_at_version", hx(U32.encode(14)))
    assert v14.startswith("0x01")
    error = rig.error("state_call", "Metadata_nothing", "0x")
    assert error["code"] == 4003
    assert error["message"] == (
        "Client error: Execution failed: Other: Exported method Metadata_nothing is not found"
    )
    assert rig.error("state_call", "AccountNonceApi_account_nonce", "0x01")["code"] == 4003


def test_rpc_runtime_version_and_metadata(rig: Rig) -> None:
    """Version JSON and metadata come straight from the runtime."""
    version = rig.result("state_getRuntimeVersion")
    assert version == rig.chain.runtime.runtime_version_json()
    assert rig.result("chain_getRuntimeVersion") == version
    metadata = rig.result("state_getMetadata")
    assert bytes.fromhex(metadata[2:]) == rig.chain.runtime.metadata()
    sub = rig.result("state_subscribeRuntimeVersion")
    assert rig.notifications("state_runtimeVersion")[0]["params"] == {
        "subscription": sub,
        "result": version,
    }


def test_rpc_storage_subscription_follows_changes(rig: Rig, alice: Keypair, bob: Keypair) -> None:
    """state_subscribeStorage: the current values first, then each change with its block."""
    key = hx(account_key(bob.public_key))
    sub = rig.result("state_subscribeStorage", [key])
    (initial,) = rig.notifications("state_storage")
    assert initial["params"]["subscription"] == sub
    assert initial["params"]["result"]["changes"][0][0] == key
    rig.result("author_submitExtrinsic", hx(rig.transfer(alice, bob.public_key, UNIT)))
    imported = rig.produce()
    change = rig.notifications("state_storage")[-1]["params"]["result"]
    assert change["block"] == hx(imported.block.hash)
    assert change["changes"][0][0] == key
    assert change["changes"][0][1] != initial["params"]["result"]["changes"][0][1]
    rig.produce()  # Bob untouched: no notification
    assert len(rig.notifications("state_storage")) == 2


def test_rpc_read_proof(rig: Rig) -> None:
    """state_getReadProof returns node encodings for the block it names."""
    from tocw.primitives.trie import verify_proof

    rig.produce()
    key = storage_prefix("System", "Number")
    proof = rig.result("state_getReadProof", [hx(key)])
    header = rig.result("chain_getHeader")
    assert proof["at"] == rig.result("chain_getHead")
    nodes = [bytes.fromhex(n[2:]) for n in proof["proof"]]
    values = verify_proof(bytes.fromhex(header["stateRoot"][2:]), nodes, [key])
    assert values[key] == U32.encode(1)


def test_rpc_query_storage_range(rig: Rig, alice: Keypair, bob: Keypair) -> None:
    """state_queryStorage lists the first block's values, then only changes."""
    key = hx(account_key(bob.public_key))
    rig.produce()
    rig.result("author_submitExtrinsic", hx(rig.transfer(alice, bob.public_key, UNIT)))
    rig.produce()
    rig.produce()
    h1, h3 = rig.chain.block_hash(1), rig.chain.block_hash(3)
    assert h1 is not None and h3 is not None
    sets = rig.result("state_queryStorage", [key], hx(h1), hx(h3))
    assert sets[0]["block"] == hx(h1) and len(sets[0]["changes"]) == 1
    assert [s["block"] for s in sets[1:]] == [hx(rig.chain.block_hash(2) or b"")]
    assert rig.error("state_queryStorage", [key], hx(h3), hx(h1))["code"] == 4001


# ---- author -----------------------------------------------------------------------------------


def test_rpc_submit_and_watch_lifecycle(rig: Rig, alice: Keypair, bob: Keypair) -> None:
    """ready -> inBlock -> finalized, then the subscription ends (unwatch says false)."""
    xt = rig.transfer(alice, bob.public_key, UNIT)
    sub = rig.result("author_submitAndWatchExtrinsic", hx(xt))

    def updates() -> list[Any]:
        return [m["params"]["result"] for m in rig.notifications("author_extrinsicUpdate")]

    assert updates() == ["ready"]
    assert rig.result("author_pendingExtrinsics") == [hx(xt)]
    imported = rig.produce()
    assert hx(xt) in [hx(x) for x in imported.block.extrinsics]
    assert updates() == ["ready", {"inBlock": hx(imported.block.hash)}]
    rig.chain.finalize_next()
    assert updates()[-1] == {"finalized": hx(imported.block.hash)}
    assert all(
        m["params"]["subscription"] == sub for m in rig.notifications("author_extrinsicUpdate")
    )
    assert rig.result("author_unwatchExtrinsic", sub) is False
    assert rig.result("author_pendingExtrinsics") == []


def test_rpc_submit_errors_use_substrate_codes(rig: Rig, alice: Keypair, bob: Keypair) -> None:
    """Bad format 1001, bad signature / stale 1010, duplicate 1013, included again 1012."""
    assert rig.error("author_submitExtrinsic", "0x0400")["code"] == 1001
    assert rig.error("author_submitExtrinsic", "garbage")["code"] == 1001
    xt = bytearray(rig.transfer(alice, bob.public_key, UNIT))
    xt[40] ^= 0xFF  # inside the signature
    error = rig.error("author_submitExtrinsic", hx(bytes(xt)))
    assert error["code"] == 1010 and error["message"] == "Invalid Transaction"
    assert error["data"].startswith("Transaction has a bad signature")
    good = rig.transfer(alice, bob.public_key, UNIT)
    tx_hash = rig.result("author_submitExtrinsic", hx(good))
    assert tx_hash == hx(blake2_256(good))
    assert rig.error("author_submitExtrinsic", hx(good))["code"] == 1013
    rig.produce()
    assert rig.error("author_submitExtrinsic", hx(good))["code"] == 1012
    stale = rig.transfer(alice, bob.public_key, 2 * UNIT, nonce=0)
    error = rig.error("author_submitExtrinsic", hx(stale))
    assert error["code"] == 1010 and error["data"].startswith("Transaction is outdated")


def test_rpc_next_index_counts_pool(rig: Rig, alice: Keypair, bob: Keypair) -> None:
    """system_accountNextIndex / account_nextIndex add the pooled transactions' nonces."""
    address = alice.ss58_address
    assert rig.result("system_accountNextIndex", address) == 0
    rig.result("author_submitExtrinsic", hx(rig.transfer(alice, bob.public_key, 1, nonce=0)))
    rig.result("author_submitExtrinsic", hx(rig.transfer(alice, bob.public_key, 1, nonce=1)))
    assert rig.result("account_nextIndex", address) == 2
    assert rig.result("account_nextIndex", hx(alice.public_key)) == 2
    assert rig.error("account_nextIndex", "5notanaddress")["code"] == -32602
    imported = rig.produce()
    assert len(imported.block.extrinsics) == 3
    assert rig.result("system_accountNextIndex", address) == 2


def test_rpc_future_transaction_waits_for_gap(rig: Rig, alice: Keypair, bob: Keypair) -> None:
    """A nonce ahead of the state is 'future' until the gap is filled, then included."""
    sub = rig.result(
        "author_submitAndWatchExtrinsic", hx(rig.transfer(alice, bob.public_key, 1, nonce=1))
    )
    assert rig.notifications("author_extrinsicUpdate")[-1]["params"] == {
        "subscription": sub,
        "result": "future",
    }
    assert len(rig.produce().block.extrinsics) == 1  # nothing ready
    rig.result("author_submitExtrinsic", hx(rig.transfer(alice, bob.public_key, 1, nonce=0)))
    assert rig.notifications("author_extrinsicUpdate")[-1]["params"]["result"] == "ready"
    assert len(rig.produce().block.extrinsics) == 3


def test_rpc_payment_query_info(rig: Rig, alice: Keypair, bob: Keypair) -> None:
    """payment_queryInfo decodes the runtime's RuntimeDispatchInfo into Substrate's JSON."""
    info: dict[str, Any] = rig.result(
        "payment_queryInfo", hx(rig.transfer(alice, bob.public_key, 1))
    )
    assert info["class"] == "normal"
    assert int(info["partialFee"]) > 0
    assert info["weight"]["ref_time"] > 0


def test_rpc_justification_subscription(rig: Rig) -> None:
    """grandpa_subscribeJustifications pushes each finalized block's justification."""
    sub = rig.result("grandpa_subscribeJustifications")
    rig.produce()
    rig.chain.finalize_next()
    (note,) = rig.notifications("grandpa_justifications")
    assert note["params"]["subscription"] == sub
    justification = GrandpaJustification.decode(bytes.fromhex(note["params"]["result"][2:]))
    assert justification.commit.target_number == 1


def test_rpc_system_methods(rig: Rig) -> None:
    """system_* answer with real values."""
    assert rig.result("system_name") == "tocw"
    assert rig.result("system_chainType") == "Development"
    assert rig.result("system_properties") == {
        "ss58Format": 42,
        "tokenDecimals": 12,
        "tokenSymbol": "TEER",
    }
    assert rig.result("system_peers") == []
    rig.produce()
    assert rig.result("system_syncState") == {
        "startingBlock": 0,
        "currentBlock": 1,
        "highestBlock": 1,
    }
