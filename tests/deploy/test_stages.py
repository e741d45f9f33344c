"""Deploy jobs run as named stages: each timed, a failure names its stage."""

from __future__ import annotations

import pytest

from aslfs_pl.deploy.stages import ExportError, Job


def test_job_stages_time_each_stage_and_name_the_failing_one(capsys):
    with Job("demo", ["one", "two"], progress=True) as job:
        with job.stage("one"):
            steps = list(job.track(range(3), 3, "steps"))
        with pytest.raises(ExportError, match=r"^\[two\] ValueError: broken$"), job.stage("two"):
            raise ValueError("broken")
    assert steps == [0, 1, 2]
    assert set(job.seconds) == {"one"}  # a failed stage records no time
    shown = capsys.readouterr().err
    assert "demo" in shown and "steps" in shown  # the display went to stderr
