"""How a model runs and where its parameters are: the end-to-end speed benchmark and the parameter report."""
