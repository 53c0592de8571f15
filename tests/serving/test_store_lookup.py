"""The SQLite store's single-id fast path (own connection per thread, fixed SQL) reads exactly what
the SQLAlchemy path reads, survives a reload that swaps the tables, and leaves other stores alone."""

from __future__ import annotations

import dataclasses
import gc
import threading

import pytest

from cxpredict.serving.api.settings import default_store_url
from cxpredict.serving.api.store import CustomerStore, load_store
from tests.serving.conftest import Company

pytestmark = pytest.mark.api


def _store(company: Company) -> CustomerStore:
    store = CustomerStore(default_store_url(company.config), "customers", company.config.id_column)
    assert store.refresh(), store.error
    return store


def test_single_id_lookup_equals_sqlalchemy_rows(company: Company) -> None:
    store = _store(company)
    try:
        assert store._fast is not None  # a file store: the fast path is on
        ids = company.dataset.survey["customer_id"].head(5).tolist() + \
            company.dataset.customers["customer_id"].sample(30, random_state=3).tolist()
        slow = store.get(ids + ["no-such-id"])  # several ids: the SQLAlchemy statement
        slow_observed = store.observed(ids)
        for customer_id in ids:
            fast = store.get([customer_id])[customer_id]
            assert fast.keys() == slow[customer_id].keys()
            for name, value in fast.items():  # same values and types (dates as datetime, yes/no as bool)
                expected = slow[customer_id][name]
                assert type(value) is type(expected) and (value == expected or value != value), name
            assert store.observed([customer_id]) == ({customer_id: slow_observed[customer_id]}
                                                     if customer_id in slow_observed else {})
        assert store.get(["no-such-id"]) == {} and store.observed(["no-such-id"]) == {}
    finally:
        store.close()


def test_fast_lookup_sees_a_reload_and_works_across_threads(company_copy_factory) -> None:  # noqa: ANN001
    copy = company_copy_factory()
    url = default_store_url(copy.config)
    store = CustomerStore(url, "customers", copy.config.id_column)
    assert store.refresh()
    try:
        customer_id = str(copy.dataset.customers["customer_id"].iloc[0])
        assert customer_id in store.get([customer_id])  # this thread's connection is now open
        dataset = copy.dataset
        fewer = dataclasses.replace(dataset, customers=dataset.customers.iloc[1:])
        load_store(copy.config, fewer, url)  # swaps the tables under the open connection
        assert store.get([customer_id]) == {}
        results: list[bool] = []
        other = str(dataset.customers["customer_id"].iloc[1])
        worker = threading.Thread(target=lambda: results.append(other in store.get([other])))
        worker.start()
        worker.join()
        assert results == [True]
        gc.collect()  # the worker thread's connection went with its thread; this thread's stays
        assert len(store._connections) == 1
    finally:
        store.close()
    assert len(store._connections) == 0
