"""DynamoDB table: on-demand, key `transaction_id`, point-in-time recovery.

Encryption at rest is always on in DynamoDB (AWS-owned key); there is nothing to switch on.
"""

from __future__ import annotations

from pipelinectl.errors import PipelineError
from pipelinectl.resources.base import (
    Health,
    HealthLevel,
    Observed,
    Resource,
    error_code,
    retry_while,
    tag_dict,
    tag_list,
)

KEY = "transaction_id"
# DynamoDB API reference, DeleteTable: "After a DeleteTable request, the specified table is in
# the DELETING state until DynamoDB completes the deletion." CreateTable of that name fails
# until then, so `up` waits for it to go and teardown returns once it is gone (boto3's
# table_not_exists waiter polls DescribeTable until ResourceNotFoundException).
GONE_WAIT = {"Delay": 2, "MaxAttempts": 150}


class Table(Resource):
    step = "table"
    kind = "DynamoDB table"

    @property
    def name(self) -> str:
        return self.ctx.names.table

    @property
    def arn(self) -> str:
        return self.ctx.arn("dynamodb", f"table/{self.name}")

    def desired(self) -> Observed:
        return {"billing_mode": "PAY_PER_REQUEST", "key": f"{KEY}:S:HASH",
                "point_in_time_recovery": True, "tags": self.ctx.tags}

    def read(self) -> Observed | None:
        ddb = self.ctx.client("dynamodb")
        try:
            table = ddb.describe_table(TableName=self.name)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            return None
        if table["TableStatus"] == "DELETING":
            return {"deleting": True}
        attr_types = {a["AttributeName"]: a["AttributeType"]
                      for a in table.get("AttributeDefinitions", [])}
        key = ",".join(f"{k['AttributeName']}:{attr_types.get(k['AttributeName'])}:{k['KeyType']}"
                       for k in table["KeySchema"])
        backups = ddb.describe_continuous_backups(TableName=self.name)
        pitr = backups["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
        # ListTagsOfResource pages its answer (NextToken): our tag may be on any page.
        tags = [tag for page in ddb.get_paginator("list_tags_of_resource").paginate(
            ResourceArn=table["TableArn"]) for tag in page.get("Tags", [])]
        return {
            "billing_mode": table.get("BillingModeSummary", {}).get("BillingMode",
                                                                    "PROVISIONED"),
            "key": key,
            "point_in_time_recovery": pitr.get("PointInTimeRecoveryStatus") == "ENABLED",
            "tags": tag_dict(tags),
            "status": table["TableStatus"],
            "item_count": table.get("ItemCount", 0),
        }

    def create(self) -> None:
        ddb = self.ctx.client("dynamodb")
        ddb.create_table(
            TableName=self.name,
            AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=tag_list(self.ctx.tags),
        )
        ddb.get_waiter("table_exists").wait(TableName=self.name,
                                            WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        self._enable_pitr()

    def _enable_pitr(self) -> None:
        """Right after creation DynamoDB may answer that backups are still being enabled."""
        retry_while(
            lambda exc: error_code(exc) == "ContinuousBackupsUnavailableException",
            lambda: self.ctx.client("dynamodb").update_continuous_backups(
                TableName=self.name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}),
            lambda exc: (f"Point-in-time recovery of table {self.name} is still unavailable "
                         f"after about a minute ({exc}); re-run `pipelinectl table`."))

    def update(self, fields: set[str], observed: Observed) -> None:
        ddb = self.ctx.client("dynamodb")
        if "key" in fields:
            raise PipelineError(
                f"Table {self.name} has key {observed['key']}, not {KEY}; a key cannot change "
                "in place: delete the table (or name another in [names] table) and re-run."
            )
        if "billing_mode" in fields:
            ddb.update_table(TableName=self.name, BillingMode="PAY_PER_REQUEST")
        if "point_in_time_recovery" in fields:
            self._enable_pitr()
        if "tags" in fields:
            ddb.tag_resource(ResourceArn=self.arn, Tags=tag_list(self.ctx.tags))

    def delete(self, observed: Observed) -> None:
        ddb = self.ctx.client("dynamodb")
        try:
            ddb.delete_table(TableName=self.name)
        except ddb.exceptions.ResourceNotFoundException:
            return
        except Exception as exc:  # still creating/updating: wait, then delete
            if error_code(exc) != "ResourceInUseException":
                raise
            ddb.get_waiter("table_exists").wait(TableName=self.name)
            ddb.delete_table(TableName=self.name)
        self.wait_deleted(observed)

    def wait_deleted(self, observed: Observed) -> None:
        ddb = self.ctx.client("dynamodb")
        try:
            ddb.describe_table(TableName=self.name)
        except ddb.exceptions.ResourceNotFoundException:
            return
        self.waiting("DynamoDB is deleting the table; waiting until it is gone")
        ddb.get_waiter("table_not_exists").wait(TableName=self.name, WaiterConfig=GONE_WAIT)

    def health(self, observed: Observed) -> Health:
        state = str(observed["status"])
        health: HealthLevel = "ok" if state == "ACTIVE" else "warn"
        return (f"{state}, {observed['item_count']} items", health,
                {"status": state, "item_count": observed["item_count"]})
