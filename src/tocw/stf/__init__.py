"""tocw.stf: the deterministic state transition function and its pluggable modules.

Start at `registry.build_stf(names)` for an `executor.Stf`; `state.State` is what it runs on.
"""
