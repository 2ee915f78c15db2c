"""How much of a day the shadow challenger scores (issue 17): a deterministic sample by review id."""
import pytest

from spark_jobs.infer import shadow_sample
from spark_jobs.settings import SettingsError
from tests.conftest import make_settings


def ids(df) -> set[str]:
    return {r.review_id for r in df.select("review_id").collect()}


def test_the_sample_is_the_share_by_review_id_the_same_every_time_and_nested(spark):
    day = spark.createDataFrame([(f"r-{i}",) for i in range(4000)], "review_id string")
    quarter, tenth = ids(shadow_sample(day, 0.25)), ids(shadow_sample(day, 0.1))
    assert 0.22 * 4000 < len(quarter) < 0.28 * 4000 and 0.08 * 4000 < len(tenth) < 0.12 * 4000
    assert ids(shadow_sample(day, 0.25)) == quarter  # deterministic
    assert tenth < quarter  # a smaller share is a subset: days and challengers compare on the same documents
    assert ids(shadow_sample(day, 1.0)) == ids(day) and ids(shadow_sample(day, 0.0)) == set()
    # by the id alone: another day holding some of the same documents samples them alike
    other = spark.createDataFrame([(f"r-{i}",) for i in range(2000, 6000)], "review_id string")
    assert {i for i in ids(shadow_sample(other, 0.25)) if int(i[2:]) < 4000} == {i for i in quarter if int(i[2:]) >= 2000}


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_outside_0_to_1_is_refused(tmp_path, share):
    with pytest.raises(SettingsError, match="shadow_share"):
        make_settings(tmp_path, shadow_share=share)


def test_above_the_cap_the_share_shrinks_to_about_that_many_rows_and_stays_nested(spark):
    from spark_jobs.infer import shadow_share_of_day

    assert shadow_share_of_day(1.0, 20_000, 1_000_000) == 0.02
    assert shadow_share_of_day(0.5, 20_000, 100_000) == 0.2
    assert shadow_share_of_day(0.5, 20_000, 30_000) == 0.5  # 15,000 rows: under the cap
    assert shadow_share_of_day(1.0, 0, 10_000_000) == 1.0  # no cap
    day = spark.createDataFrame([(f"r-{i}",) for i in range(6000)], "review_id string")
    capped = ids(shadow_sample(day, shadow_share_of_day(1.0, 600, 6000)))
    assert 480 < len(capped) < 720 and capped < ids(shadow_sample(day, 0.25))
    # a share below the sample's step (1/10,000) still scores that step's rows, never none
    big = spark.createDataFrame([(f"r-{i}",) for i in range(30_000)], "review_id string")
    assert 0 < len(ids(shadow_sample(big, shadow_share_of_day(1.0, 1, 10**9)))) < 12


def test_a_negative_cap_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="shadow_max_rows"):
        make_settings(tmp_path, shadow_max_rows=-1)
