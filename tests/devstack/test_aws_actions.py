"""The action recorder names each AWS call as IAM authorizes it: the action and the resource ARN."""

from __future__ import annotations

from devstack.aws_actions import actions_of

R = "us-east-1"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/t"


def test_a_table_call_is_its_action_on_the_table() -> None:
    assert actions_of("dynamodb", "UpdateItem", {"TableName": "t"}, R) == [("dynamodb:UpdateItem", TABLE)]


def test_a_query_on_an_index_is_on_the_index() -> None:
    got = actions_of("dynamodb", "Query", {"TableName": "t", "IndexName": "i"}, R)
    assert got == [("dynamodb:Query", TABLE + "/index/i")]


def test_a_transaction_is_each_items_action() -> None:
    items = [{"Put": {"TableName": "t"}}, {"ConditionCheck": {"TableName": "t"}}]
    got = actions_of("dynamodb", "TransactWriteItems", {"TransactItems": items}, R)
    assert got == [("dynamodb:PutItem", TABLE), ("dynamodb:ConditionCheckItem", TABLE)]


def test_a_batch_is_authorized_as_the_single_call_on_each_table() -> None:
    got = actions_of("dynamodb", "BatchWriteItem", {"RequestItems": {"t": []}}, R)
    assert got == [("dynamodb:BatchWriteItem", TABLE)]
    url = "http://127.0.0.1:5000/123456789012/q"
    assert actions_of("sqs", "SendMessageBatch", {"QueueUrl": url}, R) == [
        ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:q")
    ]


def test_a_secret_by_name_gets_the_random_suffix_of_its_arn() -> None:
    got = actions_of("secretsmanager", "GetSecretValue", {"SecretId": "p/operator-key"}, R)
    assert got == [
        (
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:p/operator-key-AbCdEf",
        )
    ]
