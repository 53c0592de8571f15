"""A synthetic telecom company whose ground truth is known: the test bed of every model.

The generating process, in order:

1. Operational data for every customer (segment, region, plan, contract, services, billing,
   usage, network quality, tickets, age, dates, value). A hidden `engagement` latent raises the
   chance of using the app and the experience, but app use itself causes nothing.
2. Three driver qualities computed from the operational data (network, price, support); the
   latent experience is their segment-weighted sum plus engagement and idiosyncratic noise.
3. The true NPS (0..10) is drawn from an ordered logit of the experience; driver ratings (1..10)
   from the driver qualities; the causes a customer would name from low ratings and the band.
4. Churn: Bernoulli of a logistic hazard in contract, tenure, experience, charge, unresolved
   tickets and fiber. Interventions propagate through the drivers, the experience and churn.
5. Survey response: Bernoulli of a propensity that depends on observable columns only (MAR),
   scaled so that its mean is the survey rate; respondents are therefore a biased sample.
6. A past randomised campaign: chosen customers get one strategy they are eligible for and a
   fair coin decides treatment (the control group).

The true mechanism is pure and seed-free: `true_churn_probability(customers, hidden)` can be
called on customers modified by `apply_strategy`, where `hidden` holds the two per-customer
latents (`engagement`, `experience_noise`) stored in the truth table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cxpredict.features.strategies import apply_strategy, eligible_mask

ID_COLUMN = "customer_id"
REFERENCE_DATE = np.datetime64("2026-10-31", "D")
CAUSE_CODES: tuple[str, ...] = ("network", "price", "support", "billing", "coverage")
DRIVERS: tuple[str, ...] = ("network", "price", "support")
BANDS: dict[str, tuple[int, int]] = {"detractor": (0, 6), "passive": (7, 8), "promoter": (9, 10)}
HIDDEN_COLUMNS: tuple[str, ...] = ("engagement", "experience_noise")

SEGMENTS: tuple[str, ...] = ("consumer", "small_business", "enterprise")
REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
PLANS: tuple[str, ...] = ("basic", "standard", "premium")
CONTRACTS: tuple[str, ...] = ("month_to_month", "one_year", "two_year")
INTERNET_TYPES: tuple[str, ...] = ("dsl", "fiber", "cable", "none")
PAYMENT_METHODS: tuple[str, ...] = ("electronic_check", "bank_transfer", "credit_card", "mailed_check")

CAMPAIGN_STRATEGIES: tuple[str, ...] = ("app_promo", "contract_upgrade", "priority_support", "price_discount")
CAMPAIGN_SHARE = 0.20
CAMPAIGN_SCORE_RATE = 0.5  # share of the past campaign's customers who answered its follow-up survey
PAST_CAMPAIGN = "past_campaign"


def _frozen(mapping: Mapping[str, Any]) -> Any:
    return field(default_factory=lambda: dict(mapping))


@dataclass(frozen=True)
class Mechanism:
    """Coefficients of the true mechanism. The defaults are the ground truth of the synthetic data.

    Driver qualities are on a roughly standard scale (higher is better); the experience is
    `sum_d weight[segment][d] * quality_d + engagement_weight * engagement + experience_noise`.
    """

    # Reference price of a bundle: (plan base + internet add-on + phone add-on) * segment multiplier.
    plan_base: dict[str, float] = _frozen({"basic": 30.0, "standard": 50.0, "premium": 75.0})
    internet_add: dict[str, float] = _frozen({"dsl": 8.0, "fiber": 20.0, "cable": 14.0, "none": 0.0})
    phone_add: float = 10.0
    segment_price: dict[str, float] = _frozen({"consumer": 1.0, "small_business": 1.3, "enterprise": 1.8})
    # Price quality: -price_sensitivity * log(charge / reference) + value of the commitment.
    price_sensitivity: float = 6.0
    contract_value: dict[str, float] = _frozen({"month_to_month": -0.2, "one_year": 0.15, "two_year": 0.3})
    # Network quality: measured quality, dropped calls and access technology.
    network_fill: float = 65.0  # a missing measurement counts as an average network
    network_per_point: float = 0.045
    dropped_call_penalty: float = 0.35
    internet_network: dict[str, float] = _frozen({"dsl": -0.3, "fiber": 0.3, "cable": 0.1, "none": 0.0})
    # Support quality: every ticket costs a little, unresolved ones much more (concave, monotone).
    ticket_penalty: float = 0.12
    unresolved_penalty: float = 0.9
    # Segment weights of the drivers (network, price, support).
    weights: dict[str, tuple[float, float, float]] = _frozen(
        {"consumer": (0.8, 0.9, 0.35), "small_business": (0.5, 0.45, 1.0), "enterprise": (0.9, 0.3, 0.9)}
    )
    engagement_weight: float = 0.8
    noise_sd: float = 0.7
    # Ordered logit: P(NPS <= k) = sigmoid(thresholds[k] - nps_scale * experience), k = 0..9.
    nps_scale: float = 1.2
    nps_thresholds: tuple[float, ...] = (-4.4, -3.86, -3.28, -2.71, -2.16, -1.47, -0.81, -0.04, 0.91, 2.07)
    # Churn logit.
    churn_intercept: float = -2.11
    churn_contract: dict[str, float] = _frozen({"month_to_month": 1.3, "one_year": 0.0, "two_year": -1.2})
    churn_per_tenure_month: float = -0.022
    churn_experience: float = -0.55
    churn_per_charge: float = 0.006  # per currency unit above 70
    churn_per_unresolved: float = 0.25
    churn_fiber: float = 0.25


def _mechanism(mechanism: Mechanism | None) -> Mechanism:
    return mechanism if mechanism is not None else Mechanism()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _map(values: pd.Series | np.ndarray, table: Mapping[str, Any]) -> np.ndarray:
    """Vectorised lookup of each value in `table`; a value the table lacks (or missing) is an error."""
    keys = list(table)
    codes = pd.Categorical(values, categories=keys).codes
    unknown = codes < 0
    if unknown.any():
        raise ValueError(f"value {np.asarray(values, dtype=object)[unknown][0]!r} is not one of {keys}")
    return np.array([table[k] for k in keys], dtype=float)[codes]


def _lookup(customers: pd.DataFrame, column: str, table: Mapping[str, Any]) -> np.ndarray:
    """Map a categorical column through a coefficient table; the error names the column."""
    try:
        return _map(customers[column], table)
    except ValueError as err:
        raise ValueError(f"column '{column}': {err}") from None


def _numeric(customers: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(customers[column]).to_numpy(dtype=float, na_value=np.nan)


def _is_yes(values: pd.Series) -> np.ndarray:
    return values.astype(object).eq("Yes").to_numpy(dtype=bool)


def reference_charge(customers: pd.DataFrame, mechanism: Mechanism | None = None) -> np.ndarray:
    """The list price of each customer's bundle (plan, internet, phone, segment), before contract.

    Args:
        customers: customer rows with plan, internet_type, phone_service and segment.
        mechanism: the true mechanism's coefficients (default: the ground truth).
    Returns:
        The reference monthly charge per customer.
    """
    m = _mechanism(mechanism)
    base = (
        _lookup(customers, "plan", m.plan_base)
        + _lookup(customers, "internet_type", m.internet_add)
        + m.phone_add * _is_yes(customers["phone_service"])
    )
    return base * _lookup(customers, "segment", m.segment_price)


def driver_qualities(customers: pd.DataFrame, mechanism: Mechanism | None = None) -> np.ndarray:
    """The true quality of each driver (network, price, support) per customer; higher is better.

    Args:
        customers: customer rows (operational columns of the synthetic company).
        mechanism: the true mechanism's coefficients (default: the ground truth).
    Returns:
        An array of shape (n, 3) in the order of DRIVERS.
    """
    m = _mechanism(mechanism)
    quality = np.clip(np.nan_to_num(_numeric(customers, "network_quality"), nan=m.network_fill), 0.0, 100.0)
    dropped = np.nan_to_num(_numeric(customers, "dropped_calls_per_month"), nan=0.0)
    network = (
        m.network_per_point * (quality - m.network_fill)
        - m.dropped_call_penalty * (dropped - 1.2)
        + _lookup(customers, "internet_type", m.internet_network)
    )
    ratio = _numeric(customers, "monthly_charge") / reference_charge(customers, m)
    price = -m.price_sensitivity * np.log(np.maximum(ratio, 1e-3)) + _lookup(
        customers, "contract", m.contract_value
    )
    tickets = np.maximum(_numeric(customers, "support_tickets_90d"), 0.0)
    unresolved = np.maximum(_numeric(customers, "unresolved_tickets"), 0.0)
    support = 0.25 - m.ticket_penalty * tickets - m.unresolved_penalty * np.log1p(unresolved)
    return np.column_stack([network, price, support])


def _hidden_arrays(customers: pd.DataFrame, hidden: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The hidden latents aligned to `customers` by id (positionally when either lacks the id)."""
    missing = [c for c in HIDDEN_COLUMNS if c not in hidden.columns]
    if missing:
        raise ValueError(f"hidden latents: column '{missing[0]}' not found in {list(hidden.columns)}")
    if ID_COLUMN in customers.columns and ID_COLUMN in hidden.columns:
        aligned = hidden.set_index(hidden[ID_COLUMN].astype(str))[list(HIDDEN_COLUMNS)].reindex(
            customers[ID_COLUMN].astype(str)
        )
        if aligned.isna().to_numpy().any():
            raise ValueError("hidden latents: some customers have no hidden latents (unknown customer_id)")
    else:
        if len(hidden) != len(customers):
            raise ValueError(f"hidden latents: {len(hidden)} rows for {len(customers)} customers")
        aligned = hidden[list(HIDDEN_COLUMNS)]
    return aligned["engagement"].to_numpy(float), aligned["experience_noise"].to_numpy(float)


def true_experience(
    customers: pd.DataFrame, hidden: pd.DataFrame, mechanism: Mechanism | None = None
) -> np.ndarray:
    """The latent experience: segment-weighted driver qualities plus engagement and noise.

    Args:
        customers: customer rows, possibly modified by `apply_strategy`.
        hidden: the per-customer latents `engagement` and `experience_noise` (the truth table).
        mechanism: the true mechanism's coefficients (default: the ground truth).
    Returns:
        The experience per customer (higher is happier).
    """
    m = _mechanism(mechanism)
    qualities = driver_qualities(customers, m)
    weights = np.column_stack(
        [_lookup(customers, "segment", {s: w[d] for s, w in m.weights.items()}) for d in range(len(DRIVERS))]
    )
    engagement, noise = _hidden_arrays(customers, hidden)
    return (weights * qualities).sum(axis=1) + m.engagement_weight * engagement + noise


def nps_probabilities(experience: np.ndarray, mechanism: Mechanism | None = None) -> np.ndarray:
    """P(NPS = k) for k = 0..10 under the ordered logit of the experience.

    Args:
        experience: the latent experience per customer.
        mechanism: the true mechanism's coefficients (default: the ground truth).
    Returns:
        An array of shape (n, 11) whose rows sum to one.
    """
    m = _mechanism(mechanism)
    cumulative = _sigmoid(np.asarray(m.nps_thresholds)[None, :] - m.nps_scale * experience[:, None])
    cumulative = np.column_stack([np.zeros(len(experience)), cumulative, np.ones(len(experience))])
    return np.diff(cumulative, axis=1)


def true_nps_probabilities(
    customers: pd.DataFrame, hidden: pd.DataFrame, mechanism: Mechanism | None = None
) -> np.ndarray:
    """The true distribution of each customer's NPS, callable on modified customers.

    Args:
        customers: customer rows, possibly modified by `apply_strategy`.
        hidden: the per-customer latents `engagement` and `experience_noise`.
        mechanism: the true mechanism's coefficients (default: the ground truth).
    Returns:
        An array of shape (n, 11): P(NPS = 0..10).
    """
    return nps_probabilities(true_experience(customers, hidden, mechanism), mechanism)


def band_probabilities(probabilities: np.ndarray) -> pd.DataFrame:
    """Collapse P(NPS = k) into P(detractor), P(passive), P(promoter).

    Args:
        probabilities: an (n, 11) array of NPS level probabilities.
    Returns:
        A frame with one column per band.
    """
    return pd.DataFrame(
        {band: probabilities[:, low : high + 1].sum(axis=1) for band, (low, high) in BANDS.items()}
    )


def true_churn_probability(
    customers: pd.DataFrame, hidden: pd.DataFrame, mechanism: Mechanism | None = None
) -> np.ndarray:
    """The true churn probability: the mechanism behind `outcomes.churned`, seed-free.

    Monotone non-decreasing in `unresolved_tickets`; `app_user` plays no part.

    Args:
        customers: customer rows, possibly modified by `apply_strategy`.
        hidden: the per-customer latents `engagement` and `experience_noise` (the truth table).
        mechanism: the true mechanism's coefficients (default: the ground truth).
    Returns:
        P(churn) per customer.
    """
    m = _mechanism(mechanism)
    experience = true_experience(customers, hidden, m)
    fiber = customers["internet_type"].astype(object).eq("fiber").to_numpy(dtype=float)
    logit = (
        m.churn_intercept
        + _lookup(customers, "contract", m.churn_contract)
        + m.churn_per_tenure_month * _numeric(customers, "tenure_months")
        + m.churn_experience * experience
        + m.churn_per_charge * (_numeric(customers, "monthly_charge") - 70.0)
        + m.churn_per_unresolved * np.maximum(_numeric(customers, "unresolved_tickets"), 0.0)
        + m.churn_fiber * fiber
    )
    return _sigmoid(logit)


# ---------------------------------------------------------------------------------------------
# Strategies (the catalogue as data; eligibility and interventions live in features.strategies)
# ---------------------------------------------------------------------------------------------


def strategy_catalogue() -> list[dict[str, Any]]:
    """The synthetic company's retention offers, in the contract's strategy format.

    Returns:
        A list of strategies (id, name, cost, eligible, apply); `app_promo` has no true effect.
    """
    return [
        {
            "id": "price_discount",
            "name": "20% discount on the monthly bill",
            "cost": 40.0,
            "eligible": [{"column": "monthly_charge", "op": ">=", "value": 50.0}],
            "apply": {"monthly_charge": {"multiply": 0.8}},
        },
        {
            "id": "voice_half_price",
            "name": "Half-price domestic voice package",
            "cost": 5.0,
            "eligible": [{"column": "phone_service", "op": "==", "value": "Yes"}],
            "apply": {"monthly_charge": {"add": -5.0}},
        },
        {
            "id": "contract_upgrade",
            "name": "One-year contract with a loyalty bonus",
            "cost": 30.0,
            "eligible": [{"column": "contract", "op": "==", "value": "month_to_month"}],
            "apply": {"contract": {"set": "one_year"}},
        },
        {
            "id": "priority_support",
            "name": "Priority support: every open ticket resolved",
            "cost": 15.0,
            "eligible": [{"column": "unresolved_tickets", "op": ">=", "value": 1}],
            "apply": {"unresolved_tickets": {"set": 0}},
        },
        {
            "id": "network_upgrade",
            "name": "Network upgrade in the customer's area",
            "cost": 60.0,
            "eligible": [
                {"column": "network_quality", "op": "<", "value": 60.0},
                {"column": "internet_type", "op": "in", "value": ["dsl", "fiber", "cable"]},
            ],
            "apply": {"network_quality": {"add": 15.0}, "dropped_calls_per_month": {"multiply": 0.5}},
        },
        {
            "id": "app_promo",
            "name": "Promotion of the self-care app",
            "cost": 5.0,
            "eligible": [{"column": "app_user", "op": "==", "value": "No"}],
            "apply": {"app_user": {"set": "Yes"}},
        },
    ]


def true_strategy_effect(
    customers: pd.DataFrame,
    hidden: pd.DataFrame,
    strategy: Mapping[str, Any],
    mechanism: Mechanism | None = None,
) -> np.ndarray:
    """The true change in P(churn) a strategy causes: after minus before, NaN when ineligible.

    Args:
        customers: customer rows.
        hidden: the per-customer latents `engagement` and `experience_noise`.
        strategy: one strategy of the catalogue format.
        mechanism: the true mechanism's coefficients (default: the ground truth).
    Returns:
        The effect per customer (negative = fewer churners).
    """
    before = true_churn_probability(customers, hidden, mechanism)
    after = true_churn_probability(apply_strategy(customers, strategy), hidden, mechanism)
    return np.where(eligible_mask(customers, strategy), after - before, np.nan)


def true_score_effect(
    customers: pd.DataFrame,
    hidden: pd.DataFrame,
    strategy: Mapping[str, Any],
    mechanism: Mechanism | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The true change in the expected NPS and in P(promoter) a strategy causes; NaN when ineligible.

    `app_promo` raises app use, a correlate of satisfaction (both follow the hidden engagement),
    without changing the experience: its true effect is 0 on the score as on churn, while a model
    of the score alone sees app users as happier.

    Args:
        customers: customer rows.
        hidden: the per-customer latents `engagement` and `experience_noise`.
        strategy: one strategy of the catalogue format.
        mechanism: the true mechanism's coefficients (default: the ground truth).
    Returns:
        (change in expected NPS, change in P(promoter)) per customer.
    """
    levels = np.arange(11.0)
    before = true_nps_probabilities(customers, hidden, mechanism)
    after = true_nps_probabilities(apply_strategy(customers, strategy), hidden, mechanism)
    eligible = eligible_mask(customers, strategy)
    low, high = BANDS["promoter"]
    delta_score = (after - before) @ levels
    delta_top = (after[:, low:high + 1] - before[:, low:high + 1]).sum(axis=1)
    return np.where(eligible, delta_score, np.nan), np.where(eligible, delta_top, np.nan)


def campaign_outcomes(
    customers: pd.DataFrame,
    hidden: pd.DataFrame,
    plan: pd.DataFrame,
    strategies: Sequence[Mapping[str, Any]],
    seed: int,
    score_rate: float = 0.5,
    date: str = "2026-11-30",
) -> pd.DataFrame:
    """What happened after a campaign plan, drawn from the true mechanism (the test bed of the loop).

    Treated customers churn and answer under their strategy, control customers as they are; a
    random `score_rate` of each group answers the follow-up survey (the others' score is missing).

    Args:
        customers: the customer rows.
        hidden: the hidden latents (`truth`'s `customer_id`, `engagement`, `experience_noise`).
        plan: `customer_id`, `strategy` and `group` (treated / control) per planned customer.
        strategies: the catalogue.
        seed: the draws' seed.
        score_rate: share answering the follow-up survey.
        date: the results' date.
    Returns:
        One row per planned customer: `customer_id`, `churned` (0/1), `nps` (or missing), `date`.
    """
    rng = np.random.default_rng(seed)
    by_id = {s["id"]: s for s in strategies}
    planned = plan[ID_COLUMN].astype(str)
    frame = customers.set_index(customers[ID_COLUMN].astype(str)).loc[planned].reset_index(drop=True)
    latents = hidden.set_index(hidden[ID_COLUMN].astype(str)).loc[planned].reset_index(drop=True)
    churn = true_churn_probability(frame, latents)
    levels = true_nps_probabilities(frame, latents)
    treated = plan["group"].astype(str).eq("treated").to_numpy()
    for sid in pd.unique(plan["strategy"][treated]):
        rows = np.flatnonzero(treated & plan["strategy"].eq(sid).to_numpy())
        changed = apply_strategy(frame.iloc[rows], by_id[str(sid)])
        churn[rows] = true_churn_probability(changed, latents.iloc[rows])
        levels[rows] = true_nps_probabilities(changed, latents.iloc[rows])
    churned = (rng.random(len(plan)) < churn).astype(np.int64)
    cumulative = np.cumsum(levels, axis=1)[:, :-1]
    nps = (rng.random((len(plan), 1)) > cumulative).sum(axis=1).astype(float)
    nps[rng.random(len(plan)) >= score_rate] = np.nan
    return pd.DataFrame({ID_COLUMN: plan[ID_COLUMN].to_numpy(), "churned": churned,
                         "nps": pd.array(nps, dtype="Int64"), "date": date})


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


@dataclass
class SyntheticCompany:
    """A generated company: the contract's tables plus the ground truth."""

    customers: pd.DataFrame  # one row per customer, id column "customer_id"
    survey: pd.DataFrame  # respondents only
    outcomes: pd.DataFrame  # customer_id, churned (0/1) for all customers
    campaigns: pd.DataFrame  # past randomised campaign: customer_id, strategy, treated, churned
    truth: pd.DataFrame  # per-customer ground truth and hidden latents
    strategies: list[dict[str, Any]]  # the strategy catalogue


def _choice(
    rng: np.random.Generator, options: Sequence[str], probabilities: np.ndarray, n: int
) -> np.ndarray:
    """n categorical draws; `probabilities` is (n, k) per row or (k,) shared by all rows."""
    cumulative = np.cumsum(np.atleast_2d(probabilities), axis=1)
    cumulative /= cumulative[:, -1:]
    u = rng.random((n, 1))
    index = np.minimum((u > cumulative).sum(axis=1), len(options) - 1)
    return np.asarray(options, dtype=object)[index]


def _with_missing(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """A copy of `values` with a random share `rate` set missing (NaN, or None for text)."""
    out = values.astype(object if values.dtype == object else float)
    out[rng.random(len(values)) < rate] = None if values.dtype == object else np.nan
    return out


def _customer_ids(n: int) -> np.ndarray:
    return np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 7)).astype(object)


def _signup_dates(rng: np.random.Generator, tenure: np.ndarray) -> np.ndarray:
    """Signup dates exactly `tenure` whole months before the reference date (day 1..28)."""
    month = REFERENCE_DATE.astype("datetime64[M]") - tenure.astype("timedelta64[M]")
    return month.astype("datetime64[D]") + rng.integers(0, 28, len(tenure)).astype("timedelta64[D]")


def _draw_profile(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Segment, region, products, contract, demographics, billing, tenure and the engagement latent."""
    segment = _choice(rng, SEGMENTS, np.array([0.70, 0.22, 0.08]), n)
    plan_mix = {
        "consumer": (0.45, 0.38, 0.17),
        "small_business": (0.3, 0.45, 0.25),
        "enterprise": (0.15, 0.4, 0.45),
    }
    contract_mix = {
        "consumer": (0.55, 0.25, 0.2),
        "small_business": (0.45, 0.3, 0.25),
        "enterprise": (0.2, 0.35, 0.45),
    }
    codes = pd.Categorical(segment, SEGMENTS).codes
    plan = _choice(rng, PLANS, np.array([plan_mix[s] for s in SEGMENTS])[codes], n)
    contract = _choice(rng, CONTRACTS, np.array([contract_mix[s] for s in SEGMENTS])[codes], n)
    internet = _choice(rng, INTERNET_TYPES, np.array([0.22, 0.42, 0.24, 0.12]), n)
    engagement = rng.standard_normal(n)
    age = np.round(np.clip(rng.normal(46.0, 15.0, n), 18.0, 88.0))
    paperless = rng.random(n) < _sigmoid(0.5 - 0.03 * (age - 46.0))
    payment_mix = np.where(paperless[:, None], [0.40, 0.27, 0.27, 0.06], [0.20, 0.20, 0.20, 0.40])
    mean_tenure = _map(contract, {"month_to_month": 14.0, "one_year": 30.0, "two_year": 48.0})
    return {
        "segment": segment,
        "region": _choice(rng, REGIONS, np.array([0.22, 0.20, 0.20, 0.18, 0.20]), n),
        "plan": plan,
        "contract": contract,
        "internet_type": internet,
        # Everyone has at least one service: no internet means a phone line.
        "phone_service": np.where((internet == "none") | (rng.random(n) < 0.86), "Yes", "No").astype(object),
        "payment_method": _choice(rng, PAYMENT_METHODS, payment_mix, n),
        "paperless_billing": paperless,
        # App use follows engagement (and youth); it causes nothing itself.
        "app_user": np.where(
            rng.random(n) < _sigmoid(-0.2 + 1.4 * engagement - 0.03 * (age - 46.0)), "Yes", "No"
        ).astype(object),
        "tenure_months": np.clip(np.round(rng.exponential(mean_tenure)) + 1, 1, 72).astype(np.int64),
        "age": age,
        "engagement": engagement,
    }


def _draw_usage(
    rng: np.random.Generator, profile: Mapping[str, np.ndarray], m: Mechanism
) -> dict[str, np.ndarray]:
    """Monthly charge, data usage, network quality, dropped calls and support tickets."""
    n = len(profile["segment"])
    products = pd.DataFrame({k: profile[k] for k in ("segment", "plan", "internet_type", "phone_service")})
    contract_price = _map(profile["contract"], {"month_to_month": 1.08, "one_year": 1.0, "two_year": 0.92})
    charge = reference_charge(products, m) * contract_price * rng.lognormal(0.0, 0.13, n)

    region_quality = _map(
        profile["region"], {"north": 70, "south": 62, "east": 68, "west": 57, "central": 72}
    )
    access_quality = _map(profile["internet_type"], {"dsl": -4.0, "fiber": 6.0, "cable": 2.0, "none": -6.0})
    quality = np.round(np.clip(region_quality + access_quality + rng.normal(0.0, 12.0, n), 0.0, 100.0), 1)
    dropped = rng.gamma(2.0, 0.6 * np.exp(-0.03 * (quality - 65.0)))
    dropped = np.round(np.where(profile["phone_service"] == "Yes", dropped, 0.0), 1)

    usage_log = _map(profile["internet_type"], {"dsl": 2.6, "fiber": 3.6, "cable": 3.2, "none": 0.0})
    usage_log = usage_log + _map(profile["plan"], {"basic": -0.3, "standard": 0.0, "premium": 0.35})

    # A poor network brings tickets; cheaper plans resolve fewer of them.
    stress = m.dropped_call_penalty * (dropped - 1.2) - m.network_per_point * (quality - 65.0)
    ticket_rate = _map(profile["segment"], {"consumer": 0.45, "small_business": 0.7, "enterprise": 1.2})
    tickets = np.minimum(rng.poisson(ticket_rate * np.exp(0.5 * stress)), 12).astype(np.int64)
    unresolved_rate = _map(profile["plan"], {"basic": 0.35, "standard": 0.25, "premium": 0.15})
    return {
        "monthly_charge": np.round(charge, 2),
        "data_usage_gb": np.round(rng.lognormal(usage_log, 0.6), 2),
        "dropped_calls_per_month": dropped,
        "network_quality": quality,
        "support_tickets_90d": tickets,
        "unresolved_tickets": rng.binomial(tickets, unresolved_rate).astype(np.int64),
    }


def _draw_customers(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The operational table (with missing values) and the hidden engagement latent.

    Args:
        rng: the generator for this stage.
        n: number of customers.
    Returns:
        (customers, engagement).
    """
    profile = _draw_profile(rng, n)
    usage = _draw_usage(rng, profile, Mechanism())
    tenure, tickets = profile["tenure_months"], usage["support_tickets_90d"]
    last_ticket = REFERENCE_DATE - rng.integers(0, 90, n).astype("timedelta64[D]")
    loyalty = _map(profile["contract"], {"month_to_month": 0.9, "one_year": 1.1, "two_year": 1.3})
    lifetime = (12.0 + 0.8 * tenure) * loyalty
    clv = np.clip(usage["monthly_charge"] * lifetime * rng.lognormal(0.0, 0.25, n), 200.0, 10_000.0)
    columns = {
        ID_COLUMN: _customer_ids(n),
        **{
            k: profile[k] for k in ("segment", "region", "plan", "contract", "internet_type", "phone_service")
        },
        "payment_method": _with_missing(rng, profile["payment_method"], 0.02),
        "paperless_billing": profile["paperless_billing"],
        "app_user": profile["app_user"],
        "tenure_months": tenure,
        "monthly_charge": usage["monthly_charge"],
        "data_usage_gb": _with_missing(rng, usage["data_usage_gb"], 0.05),
        "dropped_calls_per_month": usage["dropped_calls_per_month"],
        "network_quality": _with_missing(rng, usage["network_quality"], 0.03),
        "support_tickets_90d": tickets,
        "unresolved_tickets": usage["unresolved_tickets"],
        "age": _with_missing(rng, profile["age"], 0.08),
        "signup_date": pd.to_datetime(_signup_dates(rng, tenure)).astype("datetime64[ns]"),
        "last_ticket_date": pd.to_datetime(
            np.where(tickets > 0, last_ticket, np.datetime64("NaT", "D"))
        ).astype("datetime64[ns]"),
        "clv": np.round(clv, 2),
    }
    return pd.DataFrame(columns), profile["engagement"]


def _draw_ratings(rng: np.random.Generator, qualities: np.ndarray, experience: np.ndarray) -> np.ndarray:
    """Driver ratings 1..10 from the driver qualities, a halo of the overall experience and noise."""
    latent = 5.8 + 1.5 * qualities + 0.3 * experience[:, None] + rng.normal(0.0, 1.0, qualities.shape)
    return np.clip(np.round(latent), 1, 10).astype(np.int64)


def _draw_causes(
    rng: np.random.Generator, customers: pd.DataFrame, ratings: np.ndarray, nps: np.ndarray
) -> np.ndarray:
    """The causes each customer would name (n, len(CAUSE_CODES)): low ratings, mostly non-promoters."""
    band_offset = np.select([nps <= 6, nps <= 8], [0.0, -1.3], -3.5)
    low = 6.0 - ratings  # positive when a rating is low
    quality = np.nan_to_num(_numeric(customers, "network_quality"), nan=Mechanism().network_fill)
    unresolved = _numeric(customers, "unresolved_tickets")
    check = customers["payment_method"].astype(object).eq("electronic_check").to_numpy(float)
    paper = (~customers["paperless_billing"].astype(bool)).to_numpy(float)
    logits = {
        "network": -1.6 + 0.75 * low[:, 0],
        "price": -1.4 + 0.75 * low[:, 1],
        "support": -1.8 + 0.6 * low[:, 2] + 0.5 * unresolved,
        "billing": -2.4 + 0.35 * low[:, 1] + 0.7 * check + 0.4 * paper,
        "coverage": -2.4 + 0.4 * low[:, 0] + 0.06 * (60.0 - quality),
    }
    stacked = np.column_stack([logits[code] + band_offset for code in CAUSE_CODES])
    return (rng.random(stacked.shape) < _sigmoid(stacked)).astype(np.int8)


def _join_causes(flags: np.ndarray) -> np.ndarray:
    """';'-joined cause codes per row (None when a row names no cause)."""
    joined = np.full(len(flags), "", dtype=object)
    for j, code in enumerate(CAUSE_CODES):
        prefix = np.where(joined == "", "", joined + ";")
        joined = np.where(flags[:, j] == 1, prefix + code, joined)
    return np.where(joined == "", None, joined)


def response_logit(customers: pd.DataFrame) -> np.ndarray:
    """The survey response propensity's linear part, from observable columns only (MAR).

    Longer tenure, older customers, app users, paperless billing and business segments answer
    more; month-to-month customers less. The intercept is set later to meet the survey rate.

    Args:
        customers: customer rows.
    Returns:
        The linear predictor per customer, without intercept.
    """
    age = np.nan_to_num(_numeric(customers, "age") - 46.0, nan=0.0)
    segment = _lookup(customers, "segment", {"consumer": 0.0, "small_business": 0.3, "enterprise": 0.7})
    return (
        0.5 * np.log1p(_numeric(customers, "tenure_months"))
        + 0.02 * age
        + 1.1 * _is_yes(customers["app_user"])
        + 0.4 * customers["paperless_billing"].astype(bool).to_numpy(float)
        + segment
        - 0.5 * customers["contract"].astype(object).eq("month_to_month").to_numpy(float)
    )


def _intercept_for_rate(logit: np.ndarray, rate: float) -> float:
    """The intercept a such that mean(sigmoid(a + logit)) equals `rate` (bisection)."""
    low, high = -30.0, 30.0
    for _ in range(80):
        middle = 0.5 * (low + high)
        if _sigmoid(middle + logit).mean() < rate:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def _draw_campaign(
    rng: np.random.Generator,
    customers: pd.DataFrame,
    hidden: pd.DataFrame,
    strategies: Sequence[Mapping[str, Any]],
    baseline: np.ndarray,
    rng_score: np.random.Generator,
) -> pd.DataFrame:
    """A past randomised campaign: each chosen customer gets one strategy it is eligible for.

    Churn is recorded for everyone; a random CAMPAIGN_SCORE_RATE of both arms answers a follow-up
    survey (`nps`), so the campaign teaches effects on the score as well.
    """
    by_id = {s["id"]: s for s in strategies}
    chosen_strategies = [by_id[s] for s in CAMPAIGN_STRATEGIES]
    eligible = np.column_stack([eligible_mask(customers, s) for s in chosen_strategies])
    candidates = np.flatnonzero(eligible.any(axis=1))
    size = min(len(candidates), int(round(CAMPAIGN_SHARE * len(customers))))
    rows = np.sort(rng.choice(candidates, size=size, replace=False))
    keys = np.where(eligible[rows], rng.random((size, len(chosen_strategies))), -1.0)
    assignment = keys.argmax(axis=1)
    treated = (rng.random(size) < 0.5).astype(np.int64)
    probability = baseline[rows].copy()
    for j, strategy in enumerate(chosen_strategies):
        under = true_churn_probability(apply_strategy(customers.iloc[rows], strategy), hidden.iloc[rows])
        use = (assignment == j) & (treated == 1)
        probability[use] = under[use]
    churned = (rng.random(size) < probability).astype(np.int64)
    # The follow-up survey (its own stream, so the churn draws above stay as they were).
    levels = true_nps_probabilities(customers.iloc[rows], hidden.iloc[rows])
    for j, strategy in enumerate(chosen_strategies):
        use = np.flatnonzero((assignment == j) & (treated == 1))
        changed = apply_strategy(customers.iloc[rows[use]], strategy)
        levels[use] = true_nps_probabilities(changed, hidden.iloc[rows[use]])
    cumulative = np.cumsum(levels, axis=1)[:, :-1]
    nps = (rng_score.random((size, 1)) > cumulative).sum(axis=1).astype(float)
    nps[rng_score.random(size) >= CAMPAIGN_SCORE_RATE] = np.nan
    return pd.DataFrame(
        {
            ID_COLUMN: customers[ID_COLUMN].to_numpy()[rows],
            "strategy": np.asarray(CAMPAIGN_STRATEGIES, dtype=object)[assignment],
            "treated": treated,
            "churned": churned,
            "nps": pd.array(nps, dtype="Int64"),
            "campaign": PAST_CAMPAIGN,
            "wave": 1,
            "date": str(REFERENCE_DATE),
        }
    )


def generate_company(
    n_customers: int = 100_000, survey_rate: float = 0.03, seed: int = 42
) -> SyntheticCompany:
    """Generate a synthetic company whose true mechanisms are known.

    Every random stage has its own stream spawned from `seed`, so the customers do not change
    with `survey_rate`. Same arguments, identical frames.

    Args:
        n_customers: number of customers.
        survey_rate: mean survey response probability (share of customers surveyed).
        seed: the only source of randomness.
    Returns:
        The tables of the data contract, the strategy catalogue and the ground truth.
    """
    if n_customers < 10:
        raise ValueError(f"n_customers must be at least 10, got {n_customers}")
    if not 0.0 < survey_rate < 1.0:
        raise ValueError(f"survey_rate must be in (0, 1), got {survey_rate}")
    # spawn(7)'s first six children are spawn(6)'s: the seventh stream (follow-up scores) changes nothing else.
    rng_customers, rng_latent, rng_score, rng_survey, rng_churn, rng_campaign, rng_follow_up = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)
    )
    m = Mechanism()
    customers, engagement = _draw_customers(rng_customers, n_customers)
    ids = customers[ID_COLUMN]
    noise = rng_latent.normal(0.0, m.noise_sd, n_customers)
    hidden = pd.DataFrame({ID_COLUMN: ids, "engagement": engagement, "experience_noise": noise})

    qualities = driver_qualities(customers, m)
    experience = true_experience(customers, hidden, m)
    level_probabilities = nps_probabilities(experience, m)
    cumulative = np.cumsum(level_probabilities, axis=1)[:, :-1]
    nps = (rng_score.random((n_customers, 1)) > cumulative).sum(axis=1).astype(np.int64)
    band = np.select([nps <= 6, nps <= 8], ["detractor", "passive"], "promoter").astype(object)
    ratings = _draw_ratings(rng_score, qualities, experience)
    causes = _draw_causes(rng_score, customers, ratings, nps)

    logit = response_logit(customers)
    response_probability = _sigmoid(_intercept_for_rate(logit, survey_rate) + logit)
    responded = rng_survey.random(n_customers) < response_probability

    churn_probability = true_churn_probability(customers, hidden, m)
    churned = (rng_churn.random(n_customers) < churn_probability).astype(np.int64)

    strategies = strategy_catalogue()
    bands = band_probabilities(level_probabilities)
    score_effects: dict[str, np.ndarray] = {}
    for strategy in strategies:
        delta_score, delta_top = true_score_effect(customers, hidden, strategy, m)
        score_effects[f"true_score_effect_{strategy['id']}"] = delta_score
        score_effects[f"true_promoter_effect_{strategy['id']}"] = delta_top
    truth = pd.DataFrame(
        {
            ID_COLUMN: ids,
            "segment": customers["segment"],
            "true_nps": nps,
            "true_band": band,
            **{f"true_cause_{code}": causes[:, j] for j, code in enumerate(CAUSE_CODES)},
            **{f"true_rating_{d}": ratings[:, j] for j, d in enumerate(DRIVERS)},
            "true_experience": experience,
            "true_expected_nps": level_probabilities @ np.arange(11.0),
            **{f"true_p_{b}": bands[b].to_numpy() for b in BANDS},
            "true_churn_prob": churn_probability,
            "true_response_prob": response_probability,
            "responded": responded.astype(np.int64),
            "engagement": engagement,
            "experience_noise": hidden["experience_noise"].to_numpy(),
            **{f"true_effect_{s['id']}": true_strategy_effect(customers, hidden, s, m) for s in strategies},
            **score_effects,
        }
    )

    rows = np.flatnonzero(responded)
    survey_ratings = {
        f"rating_{d}": pd.array(_with_missing(rng_survey, ratings[rows, j] * 1.0, 0.05), dtype="Int64")
        for j, d in enumerate(DRIVERS)
    }
    survey_date = REFERENCE_DATE - rng_survey.integers(0, 90, len(rows)).astype("timedelta64[D]")
    survey = pd.DataFrame(
        {
            ID_COLUMN: ids.to_numpy()[rows],
            "nps": nps[rows],
            "causes": _join_causes(causes[rows]),
            **survey_ratings,
            "survey_date": np.datetime_as_string(survey_date, unit="D").astype(object),
        }
    )
    outcomes = pd.DataFrame({ID_COLUMN: ids, "churned": churned})
    campaigns = _draw_campaign(rng_campaign, customers, hidden, strategies, churn_probability, rng_follow_up)
    return SyntheticCompany(customers, survey, outcomes, campaigns, truth, strategies)


def alert_catalogue() -> list[dict[str, Any]]:
    """The synthetic company's default alert rules, in the contract's alert format.

    Surveyed detractors (observed) and silent predicted detractors are both covered; valuable
    customers likely to leave go to the retention desk; a sudden fall of the expected score
    since the last scoring is flagged to the region's team.
    """
    return [
        {"id": "surveyed_detractor_critical", "name": "Very unhappy in the last survey", "level": "critical",
         "when": [{"column": "observed_score", "op": "<=", "value": 3}], "route_by": "region"},
        {"id": "surveyed_detractor", "name": "Detractor in the last survey", "level": "high",
         "when": [{"column": "observed_score", "op": "<=", "value": 6}], "route_by": "region"},
        {"id": "predicted_detractor", "name": "Silent customer predicted to be a detractor", "level": "medium",
         "population": "silent", "when": [{"column": "p_bottom_band", "op": ">=", "value": 0.6}],
         "route_by": "region"},
        {"id": "valuable_churn_risk", "name": "Valuable customer likely to leave", "level": "critical",
         "when": [{"column": "churn_probability", "op": ">=", "value": 0.5},
                  {"column": "value", "op": ">=", "value": 3000}], "owner": "retention_desk"},
        {"id": "score_drop", "name": "Expected score fell since the last scoring", "level": "high",
         "when": [{"column": "expected_score_drop", "op": ">=", "value": 1.5}], "route_by": "region"},
    ]


def owner_table() -> pd.DataFrame:
    """The synthetic company's owners: one team per region (east and west share one) and a retention desk."""
    return pd.DataFrame([
        {"owner_id": "north", "name": "North region team", "contact": "north-team@example.com", "covers": "north"},
        {"owner_id": "south", "name": "South region team", "contact": "south-team@example.com", "covers": "south"},
        {"owner_id": "east_west", "name": "East and west region team", "contact": "east-west@example.com",
         "covers": "east;west"},
        {"owner_id": "central", "name": "Central region team", "contact": "central-team@example.com",
         "covers": "central"},
        {"owner_id": "retention_desk", "name": "Retention call-centre queue", "contact": "retention@example.com",
         "covers": ""},
    ])


def company_config(name: str = "synthetic") -> dict[str, Any]:
    """The `cxpredict.yaml` mapping of a written synthetic company.

    Args:
        name: the dataset name.
    Returns:
        The config mapping (paths relative to the config's folder).
    """
    return {
        "name": name,
        "id_column": ID_COLUMN,
        "data": {
            "customers": "customers.parquet",
            "survey": "survey.csv",
            "outcomes": "outcomes.csv",
            "campaigns": "campaigns.csv",
            "owners": "owners.csv",
        },
        "features": {"exclude": ["clv"]},
        "value_column": "clv",
        "score": {
            "column": "nps",
            "scale": [0, 10],
            "bands": {band: list(bounds) for band, bounds in BANDS.items()},
        },
        "causes": {"column": "causes"},
        "drivers": [f"rating_{d}" for d in DRIVERS],
        "churn": {"column": "churned"},
        "strategies": "strategies.yaml",
        "alerts": "alerts.yaml",
        "training": {"seed": 42, "tune_trials": 10, "bias_correction": True},
    }


def write_company(company: SyntheticCompany, out_dir: Path, name: str = "synthetic") -> Path:
    """Write a generated company as a dataset folder with its `cxpredict.yaml`.

    Args:
        company: the generated company.
        out_dir: the folder to write (created if needed).
        name: the dataset name in the config.
    Returns:
        The path of the `cxpredict.yaml` written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    company.customers.to_parquet(out_dir / "customers.parquet", index=False)
    company.truth.to_parquet(out_dir / "truth.parquet", index=False)
    company.survey.to_csv(out_dir / "survey.csv", index=False)
    company.outcomes.to_csv(out_dir / "outcomes.csv", index=False)
    company.campaigns.to_csv(out_dir / "campaigns.csv", index=False)
    (out_dir / "strategies.yaml").write_text(yaml.safe_dump(company.strategies, sort_keys=False))
    (out_dir / "alerts.yaml").write_text(yaml.safe_dump(alert_catalogue(), sort_keys=False))
    owner_table().to_csv(out_dir / "owners.csv", index=False)
    config_path = out_dir / "cxpredict.yaml"
    config_path.write_text(yaml.safe_dump(company_config(name), sort_keys=False, default_flow_style=None))
    return config_path


def population_nps(nps: np.ndarray | pd.Series, weights: np.ndarray | None = None) -> float:
    """100 * (share of promoters - share of detractors), optionally weighted.

    Args:
        nps: scores 0..10.
        weights: optional non-negative weights per score.
    Returns:
        The NPS in points (-100..100).
    """
    scores = np.asarray(nps, dtype=float)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=float)
    return float(100.0 * (w * ((scores >= 9).astype(float) - (scores <= 6).astype(float))).sum() / w.sum())


# ---------------------------------------------------------------------------------------------
# Unobserved selection: a hidden trait behind both answering and satisfaction (missing not at
# random). Kept apart from `generate_company`, whose default output other tests depend on.
# ---------------------------------------------------------------------------------------------

# Its own seed offset, so the trait's streams never coincide with the base company's.
_TRAIT_STREAM = 17
SELECTION_SATISFACTION = 7.0  # the NPS point where the churn logit's satisfaction term is zero


@dataclass(frozen=True)
class HiddenTrait:
    """An unobserved trait (engaged, content customers answer more) that no column records.

    The trait raises both the chance of answering and the experience; churn depends on the
    customer's satisfaction (the NPS drawn) and observed columns only, so given the score and
    the columns churn says nothing about who answered: churn is a valid shadow variable.

    Attributes:
        strength: log-odds of answering per standard deviation of the trait (0: response is MAR).
        satisfaction_weight: experience units per standard deviation of the trait.
        churn_per_score_point: churn log-odds per NPS point; 0 makes churn uninformative about
            satisfaction (the shadow variable then identifies nothing).
    """

    strength: float = 1.0
    satisfaction_weight: float = 0.8
    churn_per_score_point: float = -0.3


def selected_churn_probability(
    customers: pd.DataFrame, nps: np.ndarray, trait: HiddenTrait, mechanism: Mechanism | None = None
) -> np.ndarray:
    """P(churn) under the hidden-trait option: the default hazard with the score in place of the experience.

    Args:
        customers: customer rows.
        nps: each customer's drawn NPS (0..10).
        trait: the option's settings.
        mechanism: the true mechanism's coefficients (default: the ground truth).
    Returns:
        P(churn) per customer; depends on observed columns and the score only.
    """
    m = _mechanism(mechanism)
    fiber = customers["internet_type"].astype(object).eq("fiber").to_numpy(dtype=float)
    logit = (
        m.churn_intercept
        + _lookup(customers, "contract", m.churn_contract)
        + m.churn_per_tenure_month * _numeric(customers, "tenure_months")
        + trait.churn_per_score_point * (np.asarray(nps, float) - SELECTION_SATISFACTION)
        + m.churn_per_charge * (_numeric(customers, "monthly_charge") - 70.0)
        + m.churn_per_unresolved * np.maximum(_numeric(customers, "unresolved_tickets"), 0.0)
        + m.churn_fiber * fiber
    )
    return _sigmoid(logit)


def generate_selected_company(
    n_customers: int = 100_000, survey_rate: float = 0.03, seed: int = 42, trait: HiddenTrait | None = None
) -> SyntheticCompany:
    """A synthetic company whose respondents differ from silent customers in a trait no column shows.

    The customers, their engagement and experience noise are `generate_company`'s for the same
    seed (the same streams); the trait, the scores, the survey response and churn are drawn from
    streams of their own. The truth table holds `hidden_trait`, and its `experience_noise`
    includes the trait (so `true_experience` still holds); it has no per-strategy effects (churn
    here follows the score, not the default hazard), and the past campaign's treated customers
    churn under the default hazard: this company is the test bed of the population score only.

    Args:
        n_customers: number of customers.
        survey_rate: mean survey response probability.
        seed: the only source of randomness.
        trait: the hidden trait's settings (default `HiddenTrait()`).
    Returns:
        The tables of the data contract and the ground truth.
    """
    if n_customers < 10 or not 0.0 < survey_rate < 1.0:
        raise ValueError(f"n_customers must be at least 10 and survey_rate in (0, 1), got {n_customers}, {survey_rate}")
    trait = trait if trait is not None else HiddenTrait()
    streams = np.random.SeedSequence(seed).spawn(7)  # generate_company's: the same customers
    rng_customers, rng_latent, rng_campaign, rng_follow_up = (
        np.random.default_rng(streams[i]) for i in (0, 1, 5, 6)
    )
    rng_trait, rng_score, rng_survey, rng_churn = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, _TRAIT_STREAM]).spawn(4)
    )
    customers, engagement = _draw_customers(rng_customers, n_customers)
    ids = customers[ID_COLUMN]
    noise = rng_latent.normal(0.0, Mechanism().noise_sd, n_customers)
    hidden_trait = rng_trait.normal(0.0, 1.0, n_customers)
    hidden = pd.DataFrame({ID_COLUMN: ids, "engagement": engagement,
                           "experience_noise": noise + trait.satisfaction_weight * hidden_trait})
    experience = true_experience(customers, hidden)
    level_probabilities = nps_probabilities(experience)
    cumulative = np.cumsum(level_probabilities, axis=1)[:, :-1]
    nps = (rng_score.random((n_customers, 1)) > cumulative).sum(axis=1).astype(np.int64)
    ratings = _draw_ratings(rng_score, driver_qualities(customers), experience)
    causes = _draw_causes(rng_score, customers, ratings, nps)
    logit = response_logit(customers) + trait.strength * hidden_trait
    response_probability = _sigmoid(_intercept_for_rate(logit, survey_rate) + logit)
    responded = rng_survey.random(n_customers) < response_probability
    churn_probability = selected_churn_probability(customers, nps, trait)
    churned = (rng_churn.random(n_customers) < churn_probability).astype(np.int64)

    bands = band_probabilities(level_probabilities)
    truth = pd.DataFrame(
        {
            ID_COLUMN: ids,
            "segment": customers["segment"],
            "true_nps": nps,
            "true_band": np.select([nps <= 6, nps <= 8], ["detractor", "passive"], "promoter").astype(object),
            **{f"true_cause_{code}": causes[:, j] for j, code in enumerate(CAUSE_CODES)},
            **{f"true_rating_{d}": ratings[:, j] for j, d in enumerate(DRIVERS)},
            "true_experience": experience,
            "true_expected_nps": level_probabilities @ np.arange(11.0),
            **{f"true_p_{b}": bands[b].to_numpy() for b in BANDS},
            "true_churn_prob": churn_probability,
            "true_response_prob": response_probability,
            "responded": responded.astype(np.int64),
            "engagement": engagement,
            "experience_noise": hidden["experience_noise"].to_numpy(),
            "hidden_trait": hidden_trait,
        }
    )
    strategies = strategy_catalogue()
    survey = _selected_survey(rng_survey, ids.to_numpy(), np.flatnonzero(responded), nps, causes, ratings)
    outcomes = pd.DataFrame({ID_COLUMN: ids, "churned": churned})
    campaigns = _draw_campaign(rng_campaign, customers, hidden, strategies, churn_probability, rng_follow_up)
    return SyntheticCompany(customers, survey, outcomes, campaigns, truth, strategies)


def _selected_survey(rng: np.random.Generator, ids: np.ndarray, rows: np.ndarray, nps: np.ndarray,
                     causes: np.ndarray, ratings: np.ndarray) -> pd.DataFrame:
    """The survey table of the respondents `rows` (the contract's columns, 5 % of ratings missing)."""
    survey_date = REFERENCE_DATE - rng.integers(0, 90, len(rows)).astype("timedelta64[D]")
    return pd.DataFrame(
        {
            ID_COLUMN: ids[rows],
            "nps": nps[rows],
            "causes": _join_causes(causes[rows]),
            **{f"rating_{d}": pd.array(_with_missing(rng, ratings[rows, j] * 1.0, 0.05), dtype="Int64")
               for j, d in enumerate(DRIVERS)},
            "survey_date": np.datetime_as_string(survey_date, unit="D").astype(object),
        }
    )
