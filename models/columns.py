"""Output column names of the scoring bundle, one rule each (bundle, problem groups and every reader share them)."""


def band_column(band: str) -> str:
    return f"p_{band}"


def cause_column(code: str) -> str:
    return f"p_cause_{code}"


def driver_column(driver: str) -> str:
    return f"pred_{driver}"
