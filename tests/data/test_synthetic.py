"""The synthetic company: contract-valid output, determinism and a ground truth with the promised properties.

Statistical assertions state their margin in standard errors (SE) next to the threshold; every
threshold is at least ~3.5 SE away from the value the mechanism implies, and the seeds are fixed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cxpredict.features.config import load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.synthetic import (
    CAUSE_CODES,
    SyntheticCompany,
    apply_strategy,
    eligible_mask,
    generate_company,
    population_nps,
    response_logit,
    true_churn_probability,
    true_nps_probabilities,
    write_company,
)

pytestmark = pytest.mark.data

N = 20_000
RATE = 0.03
REQUIRED_STRATEGIES = {
    "price_discount",
    "contract_upgrade",
    "priority_support",
    "network_upgrade",
    "app_promo",
}


@pytest.fixture(scope="module")
def company() -> SyntheticCompany:
    return generate_company(N, RATE, seed=42)


def _strategy(company: SyntheticCompany, strategy_id: str) -> dict:
    return next(s for s in company.strategies if s["id"] == strategy_id)


# --- determinism and arguments ------------------------------------------------------------


def test_same_seed_gives_identical_frames() -> None:
    first, second = generate_company(3_000, 0.05, seed=7), generate_company(3_000, 0.05, seed=7)
    for name in ("customers", "survey", "outcomes", "campaigns", "truth"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    assert first.strategies == second.strategies


def test_other_seed_gives_other_data_and_survey_rate_leaves_customers_alone() -> None:
    base = generate_company(3_000, 0.05, seed=7)
    assert not base.truth["true_nps"].equals(generate_company(3_000, 0.05, seed=8).truth["true_nps"])
    more_surveyed = generate_company(3_000, 0.20, seed=7)
    pd.testing.assert_frame_equal(base.customers, more_surveyed.customers)
    assert len(more_surveyed.survey) > len(base.survey)


@pytest.mark.parametrize("kwargs", [{"n_customers": 5}, {"survey_rate": 0.0}, {"survey_rate": 1.0}])
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate_company(**{"n_customers": 1_000, **kwargs})


# --- written dataset ----------------------------------------------------------------------


def test_written_config_validates_and_the_dataset_loads(company: SyntheticCompany, tmp_path: Path) -> None:
    config_path = write_company(company, tmp_path / "synthetic", name="synth-test")
    assert config_path == tmp_path / "synthetic" / "cxpredict.yaml"
    for file in (
        "customers.parquet",
        "survey.csv",
        "outcomes.csv",
        "campaigns.csv",
        "strategies.yaml",
        "truth.parquet",
    ):
        assert (config_path.parent / file).is_file(), file

    config = load_config(config_path)
    assert config.name == "synth-test"
    assert config.id_column == "customer_id"
    assert config.features.exclude == ["clv"]
    assert config.value_column == "clv"
    assert config.drivers == ["rating_network", "rating_price", "rating_support"]
    assert config.churn is not None and config.churn.column == "churned"
    assert config.training.tune_trials == 10 and config.training.bias_correction
    assert config.score.band_of(6) == "detractor" and config.score.band_of(9) == "promoter"

    dataset = load_dataset(config, require_outcomes=True)
    assert len(dataset.customers) == N
    assert len(dataset.survey) == len(company.survey)
    assert dataset.cause_codes == sorted(CAUSE_CODES)
    assert dataset.outcomes is not None and len(dataset.outcomes) == N
    assert dataset.campaigns is not None and len(dataset.campaigns) == len(company.campaigns)
    assert pd.api.types.is_datetime64_any_dtype(dataset.customers["signup_date"])

    strategies = yaml.safe_load((config_path.parent / "strategies.yaml").read_text())
    assert strategies == company.strategies
    truth = pd.read_parquet(config_path.parent / "truth.parquet")
    pd.testing.assert_frame_equal(truth, company.truth, check_dtype=False)


# --- customers ----------------------------------------------------------------------------


def test_customer_columns_types_and_values(company: SyntheticCompany) -> None:
    c = company.customers
    assert c["customer_id"].is_unique
    assert c["customer_id"].str.fullmatch(r"C\d{7}").all()
    expected_values = {
        "segment": {"consumer", "small_business", "enterprise"},
        "plan": {"basic", "standard", "premium"},
        "contract": {"month_to_month", "one_year", "two_year"},
        "internet_type": {"dsl", "fiber", "cable", "none"},
        "phone_service": {"Yes", "No"},
        "app_user": {"Yes", "No"},
    }
    for column, values in expected_values.items():
        assert set(c[column].unique()) == values, column
    assert c["region"].nunique() == 5
    assert c["payment_method"].dropna().nunique() == 4
    assert pd.api.types.is_bool_dtype(c["paperless_billing"])
    for column in ("tenure_months", "support_tickets_90d", "unresolved_tickets"):
        assert pd.api.types.is_integer_dtype(c[column]), column
    for column in (
        "monthly_charge",
        "data_usage_gb",
        "dropped_calls_per_month",
        "network_quality",
        "age",
        "clv",
    ):
        assert pd.api.types.is_float_dtype(c[column]), column
    assert (c["unresolved_tickets"] <= c["support_tickets_90d"]).all()
    assert c["network_quality"].dropna().between(0, 100).all()
    assert c["clv"].between(200, 10_000).all()
    assert c["tenure_months"].between(1, 72).all()
    assert ((c["internet_type"] != "none") | (c["phone_service"] == "Yes")).all()


@pytest.mark.parametrize(
    ("column", "share"),
    [("payment_method", 0.02), ("data_usage_gb", 0.05), ("network_quality", 0.03), ("age", 0.08)],
)
def test_missing_values_at_their_rates(company: SyntheticCompany, column: str, share: float) -> None:
    # Binomial SE at n=20,000 is at most 0.0019 (8 %): 0.01 is over 5 SE.
    assert abs(company.customers[column].isna().mean() - share) < 0.01


def test_dates_are_consistent_with_tenure_and_tickets(company: SyntheticCompany) -> None:
    c = company.customers
    assert pd.api.types.is_datetime64_any_dtype(c["signup_date"])
    assert pd.api.types.is_datetime64_any_dtype(c["last_ticket_date"])
    reference = pd.Timestamp("2026-10-31")
    signup = c["signup_date"]
    whole_months = (reference.year - signup.dt.year) * 12 + (reference.month - signup.dt.month)
    whole_months -= (signup.dt.day > reference.day).astype(int)
    assert (whole_months == c["tenure_months"]).all()
    assert (c["last_ticket_date"].isna() == (c["support_tickets_90d"] == 0)).all()
    ticket_age = (reference - c["last_ticket_date"].dropna()).dt.days
    assert ticket_age.between(0, 89).all()


# --- survey -------------------------------------------------------------------------------


def test_survey_matches_the_truth_for_respondents(company: SyntheticCompany) -> None:
    s, truth = company.survey, company.truth
    assert list(s.columns) == [
        "customer_id",
        "nps",
        "causes",
        "rating_network",
        "rating_price",
        "rating_support",
        "survey_date",
    ]
    assert s["customer_id"].is_unique
    assert set(s["customer_id"]) == set(truth.loc[truth["responded"] == 1, "customer_id"])
    merged = s.merge(truth, on="customer_id")
    assert (merged["nps"] == merged["true_nps"]).all()
    assert s["nps"].between(0, 10).all()
    for rating in ("rating_network", "rating_price", "rating_support"):
        values = s[rating].dropna()
        assert values.between(1, 10).all() and (values == values.round()).all()
        # ~600 respondents: the 5 % missing share has SE 0.009; 0.04 is over 4 SE.
        assert 0.01 < s[rating].isna().mean() < 0.09
    assert s["survey_date"].map(lambda d: bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d))).all()
    assert pd.to_datetime(s["survey_date"]).le(pd.Timestamp("2026-10-31")).all()


def test_respondent_share_matches_the_survey_rate(company: SyntheticCompany) -> None:
    assert company.truth["true_response_prob"].mean() == pytest.approx(RATE, abs=1e-6)
    # Bernoulli sum over 20,000 customers: SE <= 0.0012; 0.005 is 4 SE.
    assert abs(len(company.survey) / N - RATE) < 0.005


def test_response_depends_on_observables_only(company: SyntheticCompany) -> None:
    """MAR: logit P(respond) is response_logit(customers) plus one intercept."""
    p = company.truth["true_response_prob"].to_numpy()
    intercept = np.log(p / (1 - p)) - response_logit(company.customers)
    assert np.ptp(intercept) < 1e-8


def test_respondents_are_a_biased_sample(company: SyntheticCompany) -> None:
    truth = company.truth
    net = truth["true_p_promoter"] - truth["true_p_detractor"]
    # Noise-free given the customers: respondents' expected NPS vs the population's (~13.5 points).
    expected_gap = 100 * (np.average(net, weights=truth["true_response_prob"]) - net.mean())
    assert expected_gap > 10
    # Realised gap with ~2,000 respondents (10 % of 20,000; ~12 points expected): the
    # respondents' NPS has SE ~1.9 points, so 5 points is ~3.7 SE below the expectation.
    surveyed = generate_company(N, 0.10, seed=42)
    realised = population_nps(surveyed.survey["nps"]) - population_nps(surveyed.truth["true_nps"])
    assert realised > 5


def test_population_figures_are_in_range(company: SyntheticCompany) -> None:
    truth = company.truth
    assert -10 < population_nps(truth["true_nps"]) < 20
    assert 0.30 < (truth["true_band"] == "detractor").mean() < 0.40
    # Base churn ~20 %: SE 0.003 at n=20,000.
    assert 0.17 < company.outcomes["churned"].mean() < 0.23
    assert set(company.outcomes["churned"].unique()) == {0, 1}
    assert list(company.outcomes["customer_id"]) == list(company.customers["customer_id"])


# --- causes -------------------------------------------------------------------------------


def test_every_cause_code_appears_and_follows_the_band(company: SyntheticCompany) -> None:
    named = company.survey["causes"].dropna().str.split(";").explode()
    assert set(named) == set(CAUSE_CODES)
    truth = company.truth
    any_cause = truth[[f"true_cause_{c}" for c in CAUSE_CODES]].max(axis=1)
    by_band = any_cause.groupby(truth["true_band"]).mean()
    assert by_band["detractor"] > by_band["passive"] > by_band["promoter"]
    assert by_band["promoter"] < 0.1


def test_low_driver_rating_makes_the_matching_cause_likely(company: SyntheticCompany) -> None:
    merged = company.survey.merge(company.truth, on="customer_id")
    for driver, cause in (("network", "network"), ("price", "price"), ("support", "support")):
        rating = merged[f"rating_{driver}"]
        low, high = (
            merged.loc[rating <= 4, f"true_cause_{cause}"],
            merged.loc[rating >= 8, f"true_cause_{cause}"],
        )
        assert low.mean() > high.mean() + 0.2, driver


# --- mechanism ----------------------------------------------------------------------------


def test_truth_columns(company: SyntheticCompany) -> None:
    expected = {
        "customer_id",
        "segment",
        "true_nps",
        "true_band",
        "true_churn_prob",
        "true_response_prob",
        "responded",
        *(f"true_cause_{c}" for c in CAUSE_CODES),
        *(f"true_effect_{s['id']}" for s in company.strategies),
    }
    assert expected <= set(company.truth.columns)
    assert np.allclose(
        true_churn_probability(company.customers, company.truth), company.truth["true_churn_prob"]
    )


def test_raising_unresolved_tickets_never_lowers_churn(company: SyntheticCompany) -> None:
    customers, hidden = company.customers, company.truth
    previous = true_churn_probability(customers, hidden)
    for extra in range(1, 6):
        raised = customers.assign(unresolved_tickets=customers["unresolved_tickets"] + extra)
        current = true_churn_probability(raised, hidden)
        assert (current >= previous).all()
        previous = current


def test_app_user_is_confounded_but_causes_nothing(company: SyntheticCompany) -> None:
    customers, truth = company.customers, company.truth
    app = customers["app_user"] == "Yes"
    assert truth.loc[app, "true_nps"].mean() > truth.loc[~app, "true_nps"].mean() + 0.5
    flipped = customers.assign(app_user=np.where(app, "No", "Yes"))
    assert np.array_equal(true_churn_probability(flipped, truth), true_churn_probability(customers, truth))
    assert np.array_equal(true_nps_probabilities(flipped, truth), true_nps_probabilities(customers, truth))


def test_a_price_cut_propagates_through_the_experience(company: SyntheticCompany) -> None:
    customers, truth = company.customers, company.truth
    strategy = _strategy(company, "price_discount")
    eligible = eligible_mask(customers, strategy)
    levels = np.arange(11)
    before = true_nps_probabilities(customers, truth) @ levels
    after = true_nps_probabilities(apply_strategy(customers, strategy), truth) @ levels
    assert (after[eligible] > before[eligible]).all()
    assert np.array_equal(after[~eligible], before[~eligible])


# --- strategies ---------------------------------------------------------------------------


def test_strategy_catalogue_format(company: SyntheticCompany) -> None:
    assert len(company.strategies) >= 5
    assert {s["id"] for s in company.strategies} >= REQUIRED_STRATEGIES
    for strategy in company.strategies:
        assert set(strategy) == {"id", "name", "cost", "eligible", "apply"}
        assert 5 <= strategy["cost"] <= 60
        for condition in strategy["eligible"]:
            assert condition["op"] in {"==", "!=", "<", "<=", ">", ">=", "in", "not_in"}
            assert condition["column"] in company.customers.columns
        for column, change in strategy["apply"].items():
            assert column in company.customers.columns
            assert len(change) == 1 and next(iter(change)) in {"set", "multiply", "add"}


def test_true_effects_nan_exactly_for_ineligible(company: SyntheticCompany) -> None:
    for strategy in company.strategies:
        effect = company.truth[f"true_effect_{strategy['id']}"]
        eligible = eligible_mask(company.customers, strategy)
        assert eligible.any(), strategy["id"]
        assert np.array_equal(effect.isna().to_numpy(), ~eligible), strategy["id"]


def test_app_promo_has_exactly_zero_effect(company: SyntheticCompany) -> None:
    effect = company.truth["true_effect_app_promo"].dropna()
    assert len(effect) > 0
    assert (effect == 0.0).all()


def test_real_strategies_lower_churn_heterogeneously(company: SyntheticCompany) -> None:
    for strategy in company.strategies:
        if strategy["id"] == "app_promo":
            continue
        effect = company.truth[f"true_effect_{strategy['id']}"].dropna()
        assert (effect < 0).all(), strategy["id"]
        assert effect.std() > 0.005, strategy["id"]
        assert effect.quantile(0.9) - effect.quantile(0.1) > 0.01, strategy["id"]


def test_apply_strategy_is_pure_and_touches_eligible_rows_only(company: SyntheticCompany) -> None:
    customers = company.customers.head(2_000)
    snapshot = customers.copy()
    strategy = _strategy(company, "network_upgrade")
    eligible = eligible_mask(customers, strategy)
    changed = apply_strategy(customers, strategy)
    pd.testing.assert_frame_equal(customers, snapshot)
    pd.testing.assert_frame_equal(changed[~eligible], customers[~eligible])
    np.testing.assert_allclose(
        changed.loc[eligible, "network_quality"], customers.loc[eligible, "network_quality"] + 15.0
    )
    np.testing.assert_allclose(
        changed.loc[eligible, "dropped_calls_per_month"],
        customers.loc[eligible, "dropped_calls_per_month"] * 0.5,
    )
    # A missing measurement never makes a customer eligible.
    assert not eligible[customers["network_quality"].isna().to_numpy()].any()

    support = apply_strategy(customers, _strategy(company, "priority_support"))
    assert pd.api.types.is_integer_dtype(support["unresolved_tickets"])
    assert (support["unresolved_tickets"] <= customers["unresolved_tickets"]).all()
    contract = apply_strategy(customers, _strategy(company, "contract_upgrade"))
    assert set(contract["contract"].unique()) <= {"one_year", "two_year"}


def test_eligibility_operators() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan], "k": ["a", "b", "c", None]})

    def mask(column: str, op: str, value: object) -> list[bool]:
        return eligible_mask(
            frame, {"id": "t", "eligible": [{"column": column, "op": op, "value": value}]}
        ).tolist()

    assert mask("x", "==", 2.0) == [False, True, False, False]
    assert mask("x", "!=", 2.0) == [True, False, True, False]
    assert mask("x", "<", 2.0) == [True, False, False, False]
    assert mask("x", "<=", 2.0) == [True, True, False, False]
    assert mask("x", ">", 2.0) == [False, False, True, False]
    assert mask("x", ">=", 2.0) == [False, True, True, False]
    assert mask("k", "in", ["a", "c"]) == [True, False, True, False]
    assert mask("k", "not_in", ["a", "c"]) == [False, True, False, False]
    with pytest.raises(ValueError, match="not found"):
        mask("missing", "==", 1)
    with pytest.raises(ValueError, match="unknown op"):
        mask("x", "~", 1)
    with pytest.raises(ValueError, match="apply column 'nope'"):
        apply_strategy(frame, {"id": "t", "eligible": [], "apply": {"nope": {"set": 1}}})


# --- campaign -----------------------------------------------------------------------------


def test_campaign_is_randomised_and_eligible(company: SyntheticCompany) -> None:
    campaigns = company.campaigns
    assert list(campaigns.columns) == ["customer_id", "strategy", "treated", "churned", "nps", "campaign", "wave",
                                       "date"]
    # Half of both arms answered the follow-up survey (~4,000 rows: SE of the share 0.008).
    answered = campaigns["nps"].notna()
    assert abs(answered.mean() - 0.5) < 0.04
    assert abs(answered[campaigns["treated"] == 1].mean() - answered[campaigns["treated"] == 0].mean()) < 0.05
    assert campaigns["customer_id"].is_unique
    assert abs(len(campaigns) / N - 0.20) < 0.02
    assert {"app_promo", "contract_upgrade"} <= set(campaigns["strategy"]) and campaigns[
        "strategy"
    ].nunique() >= 3
    # 4,000 rows: SE of the treated share is 0.008; 0.03 is ~3.8 SE.
    assert abs(campaigns["treated"].mean() - 0.5) < 0.03
    customers = company.customers.set_index("customer_id")
    for strategy_id, rows in campaigns.groupby("strategy"):
        chosen = customers.loc[rows["customer_id"]].reset_index()
        assert eligible_mask(chosen, _strategy(company, strategy_id)).all(), strategy_id


def test_campaign_control_group_reveals_real_effects(company: SyntheticCompany) -> None:
    rates = company.campaigns.groupby(["strategy", "treated"])["churned"].agg(["mean", "size"])
    control, treated = rates.loc[("contract_upgrade", 0)], rates.loc[("contract_upgrade", 1)]
    # ~430 per arm, churn ~0.31 vs ~0.11 (true mean effect ~ -0.21): SE of the difference is
    # ~0.026, so requiring a drop of 0.1 leaves ~4 SE.
    assert control["mean"] - treated["mean"] > 0.1
    # app_promo has no effect: ~500 per arm at ~0.18 churn gives SE ~0.024; 0.1 is ~4 SE.
    app_control, app_treated = rates.loc[("app_promo", 0)], rates.loc[("app_promo", 1)]
    assert abs(app_control["mean"] - app_treated["mean"]) < 0.1


def test_truth_holds_true_score_effects_and_app_promo_is_spurious(company: SyntheticCompany) -> None:
    truth = company.truth
    for s in company.strategies:
        assert f"true_score_effect_{s['id']}" in truth and f"true_promoter_effect_{s['id']}" in truth
    # app_promo raises app use, a correlate of satisfaction, and changes nothing: 0 on both outcomes.
    app = truth["true_score_effect_app_promo"].dropna()
    assert len(app) > 0 and np.allclose(app, 0.0) and np.allclose(truth["true_effect_app_promo"].dropna(), 0.0)
    # ... while app users are happier (engagement drives both): a what-if model of the score is fooled.
    happier = truth.groupby(company.customers["app_user"].to_numpy())["true_expected_nps"].mean()
    assert happier["Yes"] - happier["No"] > 0.3
    # The real offers raise the score on average (a discount of 20 % is a large price improvement).
    assert truth["true_score_effect_price_discount"].mean() > 0.3
    assert (truth["true_score_effect_priority_support"].dropna() >= -1e-12).all()


def test_campaign_follow_up_scores_reveal_score_effects(company: SyntheticCompany) -> None:
    answered = company.campaigns.dropna(subset=["nps"])
    truth = company.truth.set_index("customer_id")
    for sid in ("price_discount", "contract_upgrade", "app_promo"):
        rows = answered[answered["strategy"] == sid]
        arm = rows.groupby("treated")["nps"]
        diff = arm.mean()[1] - arm.mean()[0]
        se = float(np.sqrt((arm.var() / arm.size()).sum()))
        true_mean = truth.loc[rows["customer_id"], f"true_score_effect_{sid}"].mean()
        # The difference in follow-up means estimates the true mean effect: within 4 SE of it.
        assert abs(diff - true_mean) < 4 * se, (sid, diff, true_mean, se)


def test_hidden_trait_company_keeps_the_customers_and_makes_respondents_happier() -> None:
    """The hidden-trait option (issue 17): same customers as the default, respondents selected on the trait."""
    from cxpredict.features.synthetic import HiddenTrait, generate_selected_company, selected_churn_probability

    base = generate_company(3000, 0.2, seed=5)
    off = generate_selected_company(3000, 0.2, 5, HiddenTrait(strength=0.0))
    on = generate_selected_company(3000, 0.2, 5, HiddenTrait(strength=1.5))
    pd.testing.assert_frame_equal(base.customers, off.customers)
    pd.testing.assert_frame_equal(base.customers, on.customers)
    gap = {name: c.truth.loc[c.truth["responded"] == 1, "hidden_trait"].mean()
           - c.truth.loc[c.truth["responded"] == 0, "hidden_trait"].mean() for name, c in (("off", off), ("on", on))}
    assert abs(gap["off"]) < 0.15 and gap["on"] > 0.8
    assert set(on.survey["customer_id"]) == set(on.truth.loc[on.truth["responded"] == 1, "customer_id"])
    # churn follows the score (informative) or not at all (the switch), never the trait itself
    low, high = np.zeros(len(on.customers)), np.full(len(on.customers), 10)
    informative = HiddenTrait()
    assert (selected_churn_probability(on.customers, low, informative)
            > selected_churn_probability(on.customers, high, informative)).all()
    flat = HiddenTrait(churn_per_score_point=0.0)
    np.testing.assert_array_equal(selected_churn_probability(on.customers, low, flat),
                                  selected_churn_probability(on.customers, high, flat))
