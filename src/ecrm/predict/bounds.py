"""The range each fitted parameter must lie in (model, parameter, low, high): the predict stage refits
with a penalty when a plain fit leaves it, and the gate's `predictions` suite blocks a forecast whose
fits are outside it. Kept free of numpy/scipy so the gate imports it cheaply."""

PARAMETER_BOUNDS = [("bgnbd", "r", 0.001, 1000), ("bgnbd", "alpha", 0.01, 100000), ("bgnbd", "a", 0.001, 1000),
                    ("bgnbd", "b", 0.001, 10000), ("gamma_gamma", "p", 0.01, 10000),
                    # q in the thousands is a legitimate fit of a shop whose customers spend alike (a small
                    # shop's first days: q 1,253 in tests/test_flows.py); the runaway fits seen are 1e7 and up
                    ("gamma_gamma", "q", 1.0001, 100000), ("gamma_gamma", "gamma", 0.001, 1000000000)]


def within_bounds(model: str, parameters: dict[str, float]) -> bool:
    """Every parameter of `model` inside its range."""
    return all(low <= parameters[name] <= high for m, name, low, high in PARAMETER_BOUNDS if m == model)
