"""Write the GX file context in expectations/gx/ (run once; the JSON it writes is then the source).

`python -m ecrm.quality.bootstrap` recreates the suites from scratch. After that, data people
edit expectations/gx/expectations/*.json directly; this module is kept as the record of how the
context was made and to rebuild it after a GX upgrade.
"""

from __future__ import annotations

import shutil

from ..settings import get_settings
from .gate import CHECKPOINT, gx_context

SEGMENTS = ["Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention", "About to Sleep",
            "At Risk", "Can't Lose Them", "Hibernating", "Lost", "Prospect"]
EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def build() -> None:
    import great_expectations as gx
    from great_expectations import expectations as gxe

    root = get_settings().expectations_dir
    shutil.rmtree(root / "gx", ignore_errors=True)
    context = gx_context(root)
    source = context.data_sources.add_postgres(name="warehouse", connection_string="${ECRM_GX_WAREHOUSE_URL}")
    asset = source.add_table_asset(name="sync.sync_audience_members", table_name="sync_audience_members",
                                   schema_name="sync")
    batch = asset.add_batch_definition_whole_table("whole_table")

    def meta(name: str, severity: str = "blocking") -> dict:
        return {"name": name, "severity": severity}

    suite = context.suites.add(gx.ExpectationSuite(name="audience_members"))
    for expectation in [
        gxe.ExpectColumnValuesToNotBeNull(column="email", meta=meta("email_not_null")),
        gxe.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_REGEX, meta=meta("email_valid")),
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id", meta=meta("customer_id_not_null")),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["audience", "customer_id"],
                                            meta=meta("one_row_per_audience_member")),
        gxe.ExpectColumnValuesToBeInSet(column="segment", value_set=SEGMENTS, meta=meta("known_segment")),
        gxe.UnexpectedRowsExpectation(
            description="No unsubscribed, bounced, complained or holdout customer in an audience to be pushed.",
            unexpected_rows_query=(
                "select m.audience, m.customer_id, m.email from {batch} m join marts.dim_customers c "
                "using (customer_id) where c.is_suppressed or c.is_holdout limit 1000"),
            meta=meta("no_suppressed_or_holdout_member")),
        gxe.UnexpectedRowsExpectation(
            description="Every audience member is a known customer.",
            unexpected_rows_query=(
                "select m.customer_id from {batch} m left join marts.dim_customers c using (customer_id) "
                "where c.customer_id is null limit 1000"),
            meta=meta("member_is_known_customer")),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=meta("audiences_not_empty", "warning")),
    ]:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="audience_members", data=batch, suite=suite))
    context.checkpoints.add(gx.Checkpoint(
        name=CHECKPOINT, validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
        result_format={"result_format": "SUMMARY"}))
    context.variables.progress_bars = {"globally": False}
    context.variables.save()


if __name__ == "__main__":
    build()
