"""The TEST_RUNNER of the Django suite runs (bench/orm_suites.py): Django's own runner, plus
a JSON file of every test's outcome (so that baseline and routed runs can be compared test
by test) and of where the routed run's statements went."""

from __future__ import annotations

import json
import os
import unittest
from pathlib import Path
from typing import Any

from django.test.runner import DiscoverRunner

from router_lib.contrib import routing_service

RESULTS_ENV = "ORM_SUITE_RESULTS"


class RecordingResult(unittest.TextTestResult):
    outcomes: dict[str, str] = {}

    def addSuccess(self, test: Any) -> None:
        super().addSuccess(test)
        self.outcomes[test.id()] = "passed"

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self.outcomes[test.id()] = "failed"

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self.outcomes[test.id()] = "error"

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self.outcomes[test.id()] = "skipped"

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self.outcomes[test.id()] = "passed"  # counted as a pass, as unittest does

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self.outcomes[test.id()] = "failed"

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self.outcomes[test.id()] = "failed" if failed else "error"


class RecordingRunner(DiscoverRunner):  # type: ignore[misc]
    def get_resultclass(self) -> Any:
        return RecordingResult

    def run_suite(self, suite: Any, **kwargs: Any) -> Any:
        result = super().run_suite(suite, **kwargs)
        tally: dict[str, int] = {}
        for service in routing_service.services():
            for (target, reason), count in service.tally.items():
                key = f"{target}:{reason}"
                tally[key] = tally.get(key, 0) + count
        record = {"outcomes": RecordingResult.outcomes, "statements": tally}
        Path(os.environ[RESULTS_ENV]).write_text(json.dumps(record, indent=1))
        return result
