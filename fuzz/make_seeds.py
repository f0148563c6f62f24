#!/usr/bin/env python3
"""Writes the committed seed corpus (corpus/<target>/seed-*): valid POST bodies and the
README's refused one, stream events whose images are the golden events of events-schema in the
DynamoDB JSON a stream record carries, and SQS events shaped as the processor receives them.
Run from fuzz/: python3 make_seeds.py"""
import json, pathlib

ROOT = pathlib.Path(__file__).resolve().parent
GOLDEN = ROOT.parent / "events-schema" / "tests" / "golden"


def write(target, name, value):
    d = ROOT / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    (d / f"seed-{name}").write_text(text)


def item(item_line):
    return {"productId": item_line[0], "quantity": item_line[1], "unitPrice": item_line[2]}


# POST /orders bodies.
write("post_body", "readme-order", {"customerId": "cust-42", "items": [item(("sku-1", 2, 1250))], "currency": "EUR"})
write("post_body", "minimal", {"customerId": "c", "items": [item(("p", 1, 0))]})
write("post_body", "largest-line", {"customerId": "c@x.io", "items": [item(("p", 10000, 100000000000))] * 3, "currency": "JPY"})
write("post_body", "readme-refused", {"customerId": "", "items": [item(("sku-1", 0, 9.99))]})
write("post_body", "unknown-field", {"customerId": "c", "items": [item(("p", 1, 1))], "note": "x"})
write("post_body", "wrong-types", {"customerId": 7, "items": {"productId": None}, "currency": 1})


def dynamo(value):
    """JSON to DynamoDB JSON, as a stream record's NewImage carries it."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, list):
        return {"L": [dynamo(v) for v in value]}
    return {"M": {k: dynamo(v) for k, v in value.items()}}


def record(seq, name, image):
    return {"eventID": seq, "eventName": name, "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/OrderEvents/stream/2025-01-01T00:00:00.000",
            "dynamodb": {"Keys": {"orderId": image["orderId"], "version": image["version"]},
                         "SequenceNumber": seq, "SizeBytes": 200, "NewImage": image, "StreamViewType": "NEW_IMAGE"}}


images = []
for path in sorted(GOLDEN.glob("*.json")):
    image = dynamo(json.loads(path.read_text()))["M"]
    images.append(image)
    write("stream_record", path.stem, {"Records": [record("1", "INSERT", image)]})
    write("stream_record", f"{path.stem}-image", image)
# Fuzzing finding 1 (docs/fuzzing.md): an occurredAt finer than a millisecond.
fine = json.loads(json.dumps(images[0]))
fine["occurredAt"] = {"S": fine["occurredAt"]["S"].replace("Z", "999999Z")}
write("stream_record", "regression-submillisecond-image", fine)
write("stream_record", "batch", {"Records": [record(str(i + 1), "INSERT", im) for i, im in enumerate(images)]})
write("stream_record", "modify", {"Records": [record("9", "MODIFY", images[0])]})

# Work-queue messages.
ORDER = "5fb7ce0c-604d-53c8-9001-6c10a32769d3"


def sqs(bodies):
    return {"Records": [{"messageId": f"m-{i}", "receiptHandle": f"receipt-m-{i}", "body": b,
                         "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
                         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:work", "awsRegion": "us-east-1"}
                        for i, b in enumerate(bodies)]}


write("sqs_message", "event", sqs([ORDER]))
write("sqs_message", "event-batch", sqs([ORDER, "garbage", f" {ORDER}\n"]))
write("sqs_message", "body", ORDER)
write("sqs_message", "body-simple", ORDER.replace("-", ""))
write("sqs_message", "body-braced", "{" + ORDER + "}")
