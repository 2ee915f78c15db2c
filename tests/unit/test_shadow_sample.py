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
