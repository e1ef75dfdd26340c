"""STF modules: one Python module each, listed in tocw.stf.registry.STF_MODULES."""
