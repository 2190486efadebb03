"""The time split: which UTC days of requests form the train split, checked before any labelling.

The train split is the first `train_days` UTC days of requests, counted from the first request's
day; the test split is the rest. `train_fraction` F picks `train_days` from the logs instead:
round(F * days spanned), rounded half up, kept within [1, days spanned - 1]. Either split holding
fewer than `min_split_requests` requests is an error that says how many days the logs span, what
each split got and which `--train-days` values would work: an empty test split would otherwise
train a model and score it on nothing (AUC NaN), silently.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .history import DAY_S

DEFAULT_TRAIN_DAYS = 7  # DAIAN's split: a week of train, the following days test (the demo world's 8 days)


def utc_date(day: int) -> str:
    """The date of UTC day number `day` (days since 1970-01-01)."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()


def split_boundary(first_ts: int, train_days: int) -> int:
    """First second of the test split: the first request's UTC day + train_days days."""
    return (int(first_ts) // DAY_S + train_days) * DAY_S


def request_times(runs: pa.Table) -> np.ndarray:
    """The time of every request (one per request_id) of pass 1's request runs."""
    _, first = np.unique(runs.column("request_id").to_numpy(), return_index=True)
    return runs.column("ts").to_numpy()[first]


def days_from_fraction(fraction: float, days_spanned: int) -> int:
    """round(fraction * days_spanned), half up, within [1, days_spanned - 1]."""
    return int(min(max(math.floor(fraction * days_spanned + 0.5), 1), days_spanned - 1))


@dataclass(frozen=True)
class Split:
    """The chosen split and what it holds."""

    train_days: int
    train_fraction: float | None  # the fraction train_days came from, if any
    first_day: int  # UTC day number of the first request
    last_day: int  # UTC day number of the last request
    first_ts: int  # the first request's time
    boundary_ts: int  # requests with ts < boundary_ts are the train split
    train_requests: int
    test_requests: int
    min_split_requests: int

    @property
    def days_spanned(self) -> int:
        return self.last_day - self.first_day + 1

    def manifest(self) -> dict:
        return {"train_days": self.train_days, "train_fraction": self.train_fraction,
                "days_spanned": self.days_spanned, "first_day": utc_date(self.first_day),
                "last_day": utc_date(self.last_day), "min_split_requests": self.min_split_requests,
                "first_request_ts": self.first_ts, "boundary_ts": self.boundary_ts,
                "rule": "train: request ts < boundary_ts (first request's UTC day + train_days days)"
                        + ("; train_days = round(train_fraction * days_spanned), half up, within "
                           "[1, days_spanned - 1]" if self.train_fraction is not None else "")}


def _counts(days: np.ndarray, first_day: int, train_days: int) -> tuple[int, int]:
    train = int(np.count_nonzero(days < first_day + train_days))
    return train, int(days.size - train)


def _advice(days: np.ndarray, first_day: int, span: int, min_requests: int) -> str:
    """Which --train-days (and --train-fraction) values give both splits enough requests."""
    train = np.cumsum(np.bincount(days - first_day, minlength=span))[:-1]  # train_days = 1 .. span - 1
    ok = np.flatnonzero(np.minimum(train, days.size - train) >= min_requests) + 1
    if not ok.size:
        return (f"no --train-days value gives both splits {min_requests} requests ({days.size} "
                "requests in all): log more days or requests, or lower --min-split-requests")
    values = str(ok[0]) if ok.size == 1 else f"{ok[0]} to {ok[-1]}"
    best = int(ok[np.argmin(np.abs(ok - 0.8 * span))])  # nearest to the usual 80/20 split
    fraction = next(f for f in (round(best / span, k) for k in range(2, 12))
                    if days_from_fraction(f, span) == best)
    return f"--train-days {values} would work, or --train-fraction {fraction} ({best} of {span} days)"


def choose_split(request_ts: np.ndarray, train_days: int | None, train_fraction: float | None,
                 min_split_requests: int) -> Split:
    """The split of requests at times `request_ts` (one per request); raises ValueError, in one
    line saying what would work, when a split would hold fewer than `min_split_requests` requests."""
    request_ts = np.asarray(request_ts, dtype=np.int64)
    if request_ts.size == 0:
        raise ValueError("no requests to split")
    first_ts = int(request_ts.min())
    days = request_ts // DAY_S
    first_day, last_day = int(days.min()), int(days.max())
    span = last_day - first_day + 1
    where = (f"the requests span {span} UTC day{'s' if span > 1 else ''} "
             f"({utc_date(first_day)} to {utc_date(last_day)})")
    if train_fraction is not None:
        if span < 2:
            raise ValueError(f"{where}; a time split needs requests on 2 days at least "
                             "(train_fraction / --train-fraction cannot split one day)")
        train_days = days_from_fraction(train_fraction, span)
    elif train_days is None:
        train_days = DEFAULT_TRAIN_DAYS
    n_train, n_test = _counts(days, first_day, train_days)
    if min(n_train, n_test) < min_split_requests:
        given = (f"train_fraction={train_fraction} (train_days {train_days})" if train_fraction is not None
                 else f"train_days={train_days}")
        raise ValueError(f"{where}; {given} puts {n_train} requests in train and {n_test} in test, "
                         f"each split needs {min_split_requests} (min_split_requests, "
                         f"--min-split-requests); " + _advice(days, first_day, span, min_split_requests))
    return Split(train_days=train_days, train_fraction=train_fraction, first_day=first_day,
                 last_day=last_day, first_ts=first_ts,
                 boundary_ts=split_boundary(first_ts, train_days), train_requests=n_train,
                 test_requests=n_test, min_split_requests=min_split_requests)
