"""sqlfluff (dbt templater) keeps the dbt models in one style; the templater needs a live database,
so it runs here against the test session's own PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from ecrm.settings import dbt_env


def test_sqlfluff_lint_passes_on_models_tests_and_macros(db_url):
    # macros: the dbt templater skips a file of macro definitions (they are fragments, not SQL) and
    # lints what each macro renders inside every model that calls it
    env = {**os.environ, **dbt_env(db_url)}
    sqlfluff = Path(sys.executable).parent / "sqlfluff"
    result = subprocess.run([str(sqlfluff), "lint", "models", "tests", "macros", "--processes", "2",
                             "--disable-progress-bar"],
                            cwd=ROOT / "dbt_project", env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
