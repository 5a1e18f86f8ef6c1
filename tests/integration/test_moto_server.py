"""The tests' moto server behaves as DynamoDB does where the job store depends on it: no write is undone by
another request. (Threaded, as ``python -m moto.server`` runs it, a transaction whose condition fails restores
a copy of the table taken when it began; against that server this test lost an increment in two of three runs here.)"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from tests.aws import MotoServer
from videoconverter.aws.clients import AwsLocation

ADDERS = FAILERS = 4
ROUNDS = 60


def test_failing_transactions_undo_no_concurrent_write(moto_server: MotoServer) -> None:
    import boto3

    location = AwsLocation.from_url(moto_server.url("dynamodb"))
    client: Any = boto3.session.Session().client(
        "dynamodb", endpoint_url=location.endpoint_url, region_name=location.region,
        config=Config(max_pool_connections=ADDERS + FAILERS),
    )  # fmt: skip
    table = f"vc-race-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        client.put_item(TableName=table, Item={"pk": {"S": "exists"}})

        def add() -> None:
            for _ in range(ROUNDS):
                client.update_item(
                    TableName=table, Key={"pk": {"S": "counter"}}, UpdateExpression="ADD n :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )  # fmt: skip

        def fail() -> None:
            put = {"TableName": table, "Item": {"pk": {"S": "exists"}}}
            put["ConditionExpression"] = "attribute_not_exists(pk)"  # it exists: every transaction fails
            for _ in range(ROUNDS):
                # By its code, not client.exceptions' class: threads that raise it first may each make that class
                # (botocore builds it lazily), and one thread's is then not the other's.
                try:
                    client.transact_write_items(TransactItems=[{"Put": put}])
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "TransactionCanceledException":
                        raise

        threads = [threading.Thread(target=add) for _ in range(ADDERS)]
        threads += [threading.Thread(target=fail) for _ in range(FAILERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        item = client.get_item(TableName=table, Key={"pk": {"S": "counter"}}, ConsistentRead=True)["Item"]
        assert int(item["n"]["N"]) == ADDERS * ROUNDS
    finally:
        client.delete_table(TableName=table)
        client.close()
