"""tocw.parentchain: the Substrate client glue the worker and the CLI share.

client holds ParentchainClient (typed standard JSON-RPC calls, the pipelined catch-up fetcher,
extrinsic submission and watching, head subscriptions) and ReconnectingClient; errors holds the
ParentchainError tree. Built on tocw.rpc's client and tocw.primitives' codecs only.
"""
