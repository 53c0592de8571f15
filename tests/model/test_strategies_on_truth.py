"""Strategy recommendations judged by the synthetic company's true effects (`true_effect_<id>` in truth).

One 20,000-customer company (10 % surveyed, a 4,000-row randomised campaign). The models are
trained once per module with a small budget (2 tuning trials, one thread; no cause or driver
models: simulation reads the score and churn models only).

Every "true value" is computed from the known mechanism, so the comparisons carry no sampling
noise of their own; what varies is the fitted models. Margins are stated next to each assertion:
the recommendation must beat the single best strategy and random assignment by more than 4
standard errors of the per-customer paired difference (how much the verdict could move if the
customers were redrawn), and reach a share of the oracle's value well below the one measured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxpredict.features.config import CxConfig, load_config
from cxpredict.features.load import load_dataset
from cxpredict.features.synthetic import SyntheticCompany, generate_company, write_company
from cxpredict.models.bundle import ScoringBundle
from cxpredict.models.simulate import Simulation, assign_with_budget, best_strategy, simulate_effects
from cxpredict.training.train import fit_models
from cxpredict.training.uplift import fit_campaign_uplift

pytestmark = [pytest.mark.model, pytest.mark.slow]

N_CUSTOMERS, SURVEY_RATE, SEED = 20_000, 0.10, 7


@pytest.fixture(scope="module")
def company() -> SyntheticCompany:
    return generate_company(N_CUSTOMERS, SURVEY_RATE, seed=SEED)


@pytest.fixture(scope="module")
def config(company: SyntheticCompany, tmp_path_factory: pytest.TempPathFactory) -> CxConfig:
    config = load_config(write_company(company, tmp_path_factory.mktemp("truth_company")))
    return config.model_copy(update={
        "causes": None, "drivers": [], "training": config.training.model_copy(update={"threads": 1}),
    })


@pytest.fixture(scope="module")
def bundle(config: CxConfig) -> ScoringBundle:
    dataset = load_dataset(config)
    bundle = fit_models(config, dataset, tune_trials=2, log_trials=False).bundle
    bundle.uplift = fit_campaign_uplift(config, dataset, bundle.pipeline)
    return bundle


@pytest.fixture(scope="module")
def learned(bundle: ScoringBundle, company: SyntheticCompany) -> Simulation:
    return simulate_effects(bundle, company.customers, company.strategies, "clv", "segment", threads=1)


@pytest.fixture(scope="module")
def simulated(bundle: ScoringBundle, company: SyntheticCompany) -> Simulation:
    return simulate_effects(
        bundle, company.customers, company.strategies, "clv", "segment", use_learned=False, threads=1
    )


@pytest.fixture(scope="module")
def true_value(company: SyntheticCompany) -> pd.DataFrame:
    """customers × strategies: −(true change in P(churn))·clv − cost; NaN where not eligible."""
    effects = company.truth.set_index("customer_id")[[f"true_effect_{s['id']}" for s in company.strategies]]
    effects.columns = [s["id"] for s in company.strategies]
    clv = company.customers.set_index("customer_id")["clv"]
    costs = pd.Series({s["id"]: s["cost"] for s in company.strategies})
    return (-effects).mul(clv, axis=0).sub(costs, axis=1)


def _per_customer_value(true_value: pd.DataFrame, assignment: pd.Series) -> pd.Series:
    """The true value each customer yields under an assignment (id -> strategy id or 'none')."""
    stacked = true_value.stack()
    chosen = assignment[assignment != "none"]
    values = stacked.reindex(pd.MultiIndex.from_arrays([chosen.index, chosen.to_numpy()])).to_numpy()
    return pd.Series(values, index=chosen.index).reindex(true_value.index, fill_value=0.0)


def _beats_by_se(better: pd.Series, worse: pd.Series) -> float:
    """How many standard errors of the paired per-customer difference the totals differ by."""
    difference = better - worse
    return float(difference.sum() / (difference.std() * np.sqrt(len(difference))))


def test_learned_recommendation_against_oracle_single_best_and_random(
    learned: Simulation, true_value: pd.DataFrame
) -> None:
    best = best_strategy(learned, "value").set_index("customer_id")["best_strategy"]
    recommended = _per_customer_value(true_value, best)
    oracle = true_value.clip(lower=0).max(axis=1).fillna(0.0)
    single_best_id = true_value.sum().idxmax()  # the strategy worth most when everyone eligible gets it
    single_best = true_value[single_best_id].fillna(0.0)
    random = true_value.mean(axis=1).fillna(0.0)  # expectation of a uniformly random eligible strategy
    share = recommended.sum() / oracle.sum()
    print(
        f"true value: recommended {recommended.sum():,.0f}, oracle {oracle.sum():,.0f} ({share:.1%}), "
        f"single best '{single_best_id}' {single_best.sum():,.0f}, random {random.sum():,.0f}; "
        f"SE margins {_beats_by_se(recommended, single_best):.1f} / {_beats_by_se(recommended, random):.1f}"
    )
    # Measured 0.91 of the oracle with these seeds (random assignment reaches 0.45, the single best
    # strategy 0.87); 0.85 leaves room for model variation. Beating the single best and random is
    # asserted by the paired difference: measured 12.5 and 89 SE, required 4.
    assert share > 0.85
    assert _beats_by_se(recommended, single_best) > 4
    assert _beats_by_se(recommended, random) > 4


def test_budget_plan_spends_better_than_random_targeting(
    learned: Simulation, true_value: pd.DataFrame
) -> None:
    budget = 20_000.0
    plan = assign_with_budget(learned, budget, "value")
    assert plan.spent <= budget and plan.total_gain <= plan.lp_bound
    assigned = plan.assignment.set_index("customer_id")["strategy"]
    planned = _per_customer_value(true_value, assigned).sum()
    # Random targeting spends the budget on random eligible (customer, offer) pairs: in expectation
    # it returns the budget times the true value per unit of cost over all eligible pairs.
    pairs = true_value.stack()
    costs = pairs.index.get_level_values(1).map(learned.effects.groupby("strategy")["cost"].first())
    random_per_cost = pairs.sum() / float(np.sum(costs))
    print(f"budget {budget:,.0f}: planned true value {planned:,.0f}, random {budget * random_per_cost:,.0f}")
    # Measured 14x; requiring 3x fails a plan that ignores value per cost.
    assert planned > 3 * budget * random_per_cost


def test_confounded_app_promo_is_credited_by_simulation_and_flagged_once_learned(
    bundle: ScoringBundle, learned: Simulation, simulated: Simulation, company: SyntheticCompany
) -> None:
    # The observational model links app use with happier, staying customers (a hidden latent drives
    # both), so the what-if credits the promotion: measured mean ΔP(churn) ≈ −0.04.
    what_if = simulated.effects[simulated.effects["strategy"] == "app_promo"]
    assert what_if["delta_churn"].mean() < -0.01 and (what_if["method"] == "simulated").all()
    assert (best_strategy(simulated, "value")["best_strategy"] == "app_promo").sum() > 100

    # Its randomised campaign (~950 rows) shows no effect: the CI includes 0, it is flagged, and the
    # learned effect (no benefit) replaces the simulated one, so it is never recommended.
    result = bundle.uplift["app_promo"]
    assert result.ate_ci_low <= 0 <= result.ate_ci_high and result.ineffective
    rows = learned.effects[learned.effects["strategy"] == "app_promo"]
    assert (rows["method"] == "learned").all() and (rows["delta_churn"] >= 0).all()
    assert (rows["expected_value"] <= -5.0).all()  # at best −cost
    assert (rows["delta_churn_simulated"] == what_if["delta_churn"].to_numpy()).all()  # still reported
    assert (best_strategy(learned, "value")["best_strategy"] != "app_promo").all()


def test_real_campaign_effect_is_learned_close_to_the_truth(
    bundle: ScoringBundle, learned: Simulation, company: SyntheticCompany
) -> None:
    result = bundle.uplift["contract_upgrade"]
    assert not result.ineffective and result.ate_ci_high < 0
    campaign = company.campaigns[company.campaigns["strategy"] == "contract_upgrade"]
    true_mean = company.truth.set_index("customer_id").loc[campaign["customer_id"], "true_effect_contract_upgrade"]
    # The difference in means estimates the campaign customers' mean true effect; 4 SE is the margin.
    assert abs(result.ate - true_mean.mean()) < 4 * result.ate_se
    assert (learned.effects.loc[learned.effects["strategy"] == "contract_upgrade", "method"] == "learned").all()
    never_run = learned.effects[learned.effects["strategy"] == "network_upgrade"]
    assert (never_run["method"] == "simulated").all()  # no campaign: the what-if stays, and says so


def test_simulation_reuses_a_callers_encoding_and_baseline_exactly(bundle: ScoringBundle, company: SyntheticCompany,
                                                                   learned: Simulation) -> None:
    """`alerts run` hands over the rows it just scored: the effects must be the ones computed from scratch."""
    from cxpredict.models.bundle import band_column

    customers = company.customers.reset_index(drop=True)
    X = bundle.pipeline.transform(customers)
    base = bundle.predict_matrix(X, 1, causes=False, drivers=False)
    baseline = {c: base[c] for c in [*map(band_column, bundle.band_names), "expected_score", "churn_probability"]}
    reused = simulate_effects(bundle, customers, company.strategies, "clv", "segment", threads=1, X=X,
                              baseline=baseline)
    pd.testing.assert_frame_equal(reused.effects, learned.effects)
    pd.testing.assert_frame_equal(reused.baseline, learned.baseline)
