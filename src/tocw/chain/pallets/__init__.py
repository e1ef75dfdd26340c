"""The dev runtime's pallets, one module each, declared with tocw.chain.pallets.framework.

Each module declares its calls, events, errors, storage and constants once and exports them as
`PALLET`; tocw.chain.runtime lists the pallets (their order is their index) and derives the
call decoders and, through tocw.chain.metadata, the V14 metadata from those declarations.
"""
