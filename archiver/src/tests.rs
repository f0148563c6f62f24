//! The archiver against records shaped as Firehose and the table's Kinesis streaming
//! destination send them, built from the golden files (`events-schema/tests/golden`): every
//! event type and schema version the wire format has.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use base64::Engine as _;
use events_schema::{EventEnvelope, EventType, StoredEvent};
use order_history::export::{sink, Format};
use order_history::{payload_columns, COLUMNS};
use serde_json::{json, Value};

use super::*;

const GOLDEN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events-schema/tests/golden");

/// Every golden file: its name and its wire form.
fn goldens() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(GOLDEN_DIR)
        .expect("the golden files")
        .map(|entry| entry.expect("a golden file").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a golden file");
            let name = path.file_name().expect("a name").to_string_lossy().into();
            (name, serde_json::from_str(&text).expect("golden JSON"))
        })
        .collect()
}

fn golden(name: &str) -> Value {
    goldens()
        .into_iter()
        .find(|(file, _)| file == name)
        .map(|(_, wire)| wire)
        .expect("that golden file")
}

/// The wire form as the table holds it: DynamoDB's attribute-value JSON (`{"S": …}`).
fn image(wire: &Value) -> Value {
    let item: serde_dynamo::Item = serde_dynamo::to_item(wire).expect("an item");
    serde_json::to_value(item).expect("attribute-value JSON")
}

/// A change record as the Kinesis streaming destination writes it (kds.html), base64.
fn change_record(event_name: &str, new_image: Option<Value>) -> String {
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": 1_764_000_000_001_u64,
        "ApproximateCreationDateTimePrecision": "MILLISECOND",
        "Keys": {
            "orderId": {"S": "01938a3c-0000-7000-8000-000000000001"},
            "version": {"N": "1"}
        },
        "SizeBytes": 300
    });
    if let Some(new_image) = new_image {
        dynamodb["NewImage"] = new_image;
    }
    let record = json!({
        "awsRegion": "eu-west-1",
        "eventID": "7f1ee7b6-0000-4000-8000-000000000001",
        "eventName": event_name,
        "userIdentity": null,
        "recordFormat": "application/json",
        "tableName": "OrderEvents",
        "dynamodb": dynamodb,
        "eventSource": "aws:dynamodb"
    });
    base64::engine::general_purpose::STANDARD.encode(record.to_string())
}

fn insert_of(wire: &Value) -> String {
    change_record("INSERT", Some(image(wire)))
}

/// A Firehose request (data-transformation.html) with these records' data, `record-<i>` their
/// ids.
fn request(data: &[String]) -> Value {
    let records: Vec<Value> = data
        .iter()
        .enumerate()
        .map(|(i, data)| {
            json!({
                "recordId": format!("record-{i}"),
                "approximateArrivalTimestamp": 1_764_000_000_500_u64,
                "data": data,
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": "01938a3c-0000-7000-8000-000000000001",
                    "approximateArrivalTimestamp": 1_764_000_000_500_u64,
                    "sequenceNumber": format!("4954698668313554428650745793632162567570019247115678515{i}"),
                    "subsequenceNumber": 0
                }
            })
        })
        .collect();
    json!({
        "invocationId": "invocation-1",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/order-archive",
        "sourceKinesisStreamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/order-events",
        "region": "eu-west-1",
        "records": records
    })
}

/// The response as Firehose reads it (JSON).
fn respond(data: &[String]) -> Value {
    let event: FirehoseEvent = serde_json::from_value(request(data)).expect("the request reads");
    serde_json::to_value(transform(event)).expect("the response serializes")
}

fn results(response: &Value) -> Vec<&str> {
    response["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["result"].as_str().expect("a result"))
        .collect()
}

fn decoded_data(record: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(record["data"].as_str().expect("data"))
        .expect("base64 data")
}

/// What `orders events --format ndjson` writes for `event`: the export's own sink.
fn exported(event: &EventEnvelope) -> Vec<u8> {
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    let mut ndjson = sink(Format::Ndjson, Box::new(out.clone())).expect("the NDJSON sink");
    ndjson.write(event).expect("written");
    ndjson.finish().expect("flushed");
    let bytes = out.0.lock().expect("buffer").clone();
    bytes
}

fn decode(wire: &Value) -> EventEnvelope {
    let stored: StoredEvent = serde_json::from_value(wire.clone()).expect("the wire form");
    stored.decode().expect("a golden event decodes")
}

#[test]
fn every_event_type_and_schema_version_is_archived_as_the_row_orders_events_exports_for_it() {
    // Given every golden file: each event type in each schema version the wire format has.
    let goldens = goldens();
    let mut types = BTreeSet::new();
    for (name, wire) in &goldens {
        let event = decode(wire);
        types.insert(event.event_type().as_str());

        // When its INSERT reaches the archiver
        let response = respond(&[insert_of(wire)]);

        // Then it is one row: the line the NDJSON export writes for the same event, keyed by
        // the export's columns, the payload columns its type fills and no others, partitioned
        // by the day it happened.
        let record = &response["records"][0];
        assert_eq!(record["result"], "Ok", "{name}");
        assert_eq!(record["recordId"], "record-0", "{name}");
        let line = decoded_data(record);
        assert_eq!(line, exported(&event), "{name}");
        assert_eq!(line.last(), Some(&b'\n'), "{name}: newline-terminated");
        let row: Value = serde_json::from_slice(&line).expect("one JSON object");
        let row = row.as_object().expect("an object");
        let keys: BTreeSet<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(keys, COLUMNS.into_iter().collect(), "{name}");
        let filled: BTreeSet<&str> = row
            .iter()
            .filter(|(column, value)| !value.is_null() && !is_envelope(column))
            .map(|(column, _)| column.as_str())
            .collect();
        let expected: BTreeSet<&str> = payload_columns(event.event_type())
            .iter()
            .copied()
            .collect();
        assert_eq!(filled, expected, "{name}");
        assert_eq!(row["eventId"], wire["eventId"], "{name}: the dedup key");
        assert_eq!(
            record["metadata"]["partitionKeys"]["day"], "2025-11-24",
            "{name}"
        );
    }
    // (and the golden files cover every event type: the events-schema test demands one each)
    let all: BTreeSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(types, all);
}

/// The envelope's columns: every event fills them.
fn is_envelope(column: &str) -> bool {
    COLUMNS
        .iter()
        .take_while(|c| **c != "customerId")
        .any(|c| *c == column)
}

#[test]
fn an_order_received_v1_is_archived_as_the_same_row_as_its_v2() {
    // Given the same OrderReceived in schema version 1 (no currency: USD) and 2
    let v1 = golden("order_received_v1.json");
    let v2 = golden("order_received_v2.json");

    // When both reach the archiver
    let response = respond(&[insert_of(&v1), insert_of(&v2)]);

    // Then v1 is upcast: both rows are the current version's, byte for byte
    assert_eq!(results(&response), ["Ok", "Ok"]);
    let rows = [&response["records"][0], &response["records"][1]].map(decoded_data);
    assert_eq!(rows[0], rows[1]);
    let row: Value = serde_json::from_slice(&rows[0]).expect("a row");
    assert_eq!(row["schemaVersion"], 2);
    assert_eq!(row["currency"], "USD");
}

#[test]
fn an_undecodable_record_among_good_ones_fails_alone_and_its_neighbours_are_rows() {
    // Given good records around an unknown event type, an unknown schema version, a payload
    // that does not fit its type, an INSERT without an image and data that is no change record
    let good = insert_of(&golden("order_completed_v1.json"));
    let mut unknown_type = golden("order_completed_v1.json");
    unknown_type["eventType"] = json!("OrderTeleported");
    let mut unknown_version = golden("order_failed_v1.json");
    unknown_version["schemaVersion"] = json!(9);
    let mut bad_payload = golden("order_failed_v1.json");
    bad_payload["payload"] = json!({"reason": 42});
    let data = [
        good.clone(),
        insert_of(&unknown_type),
        good.clone(),
        insert_of(&unknown_version),
        insert_of(&bad_payload),
        change_record("INSERT", None),
        base64::engine::general_purpose::STANDARD.encode("{\"not\": \"a change record\"}"),
        change_record("UPSERT", Some(image(&golden("order_completed_v1.json")))),
        good,
    ];

    // When the batch reaches the archiver
    let response = respond(&data);

    // Then each bad record is ProcessingFailed on its own, in place, and every good one is a
    // row; every record id comes back, in order
    assert_eq!(
        results(&response),
        [
            "Ok",
            "ProcessingFailed",
            "Ok",
            "ProcessingFailed",
            "ProcessingFailed",
            "ProcessingFailed",
            "ProcessingFailed",
            "ProcessingFailed",
            "Ok"
        ]
    );
    let ids: Vec<&str> = response["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["recordId"].as_str().expect("an id"))
        .collect();
    let expected: Vec<String> = (0..data.len()).map(|i| format!("record-{i}")).collect();
    assert_eq!(ids, expected);
}

#[test]
fn each_undecodable_record_says_why() {
    let mut unknown_type = golden("order_completed_v1.json");
    unknown_type["eventType"] = json!("OrderTeleported");
    assert!(matches!(
        archive_record(&insert_of(&unknown_type)),
        Err(ArchiveError::Event(
            events_schema::DecodeError::UnknownType { .. }
        ))
    ));
    assert!(matches!(
        archive_record(&change_record("INSERT", None)),
        Err(ArchiveError::NoImage)
    ));
    assert!(matches!(
        archive_record("%%% not base64 %%%"),
        Err(ArchiveError::Base64(_))
    ));
    let not_json = base64::engine::general_purpose::STANDARD.encode("{\"eventName\": ");
    assert!(matches!(
        archive_record(&not_json),
        Err(ArchiveError::ChangeRecord(_))
    ));
}

#[test]
fn a_modify_or_a_remove_is_dropped_as_no_event() {
    // Given a MODIFY (with its new image) and a REMOVE (keys only) of an event item
    let wire = golden("order_processing_started_v1.json");
    let data = [
        change_record("MODIFY", Some(image(&wire))),
        change_record("REMOVE", None),
        insert_of(&wire),
    ];

    // When they reach the archiver
    let response = respond(&data);

    // Then both are Dropped (the log is append-only: the INSERT is the event) and carry no
    // partition; the INSERT beside them is a row
    assert_eq!(results(&response), ["Dropped", "Dropped", "Ok"]);
    assert_eq!(
        response["records"][0]["metadata"]["partitionKeys"],
        json!({})
    );
    assert_eq!(
        archive_record(&data[1]).expect("readable"),
        Archived::Dropped("REMOVE")
    );
}

#[test]
fn garbage_base64_is_processing_failed_without_failing_the_request_or_its_neighbours() {
    // Given a request with data that is not base64 beside a good record
    let good = insert_of(&golden("order_received_v2.json"));
    let body = request(&["***garbage***".to_owned(), good]);

    // (the event type of aws_lambda_events would refuse the whole request: that is why the
    // archiver reads its own)
    assert!(serde_json::from_value::<KinesisFirehoseEvent>(body.clone()).is_err());

    // When it reaches the archiver
    let event: FirehoseEvent = serde_json::from_value(body).expect("the request reads");
    let response = serde_json::to_value(transform(event)).expect("serializes");

    // Then the garbage is ProcessingFailed and the good record is a row
    assert_eq!(results(&response), ["ProcessingFailed", "Ok"]);
}

#[test]
fn the_partition_is_the_utc_day_the_event_happened() {
    // Given an event in the last millisecond of a day (UTC)
    let mut wire = golden("order_completed_v1.json");
    wire["occurredAt"] = json!("2025-12-31T23:59:59.999Z");

    // When it is archived
    let archived = archive_record(&insert_of(&wire)).expect("a row");

    // Then it is that day's, whenever it arrives
    let Archived::Row { day, .. } = archived else {
        panic!("not a row: {archived:?}");
    };
    assert_eq!(day, "2025-12-31");
}

#[test]
fn the_response_has_the_shape_firehose_reads() {
    // Given one good record
    let response = respond(&[insert_of(&golden("order_failed_v1.json"))]);

    // Then it is {records: [{recordId, result, data (base64), metadata.partitionKeys}]}
    let parsed: KinesisFirehoseResponse =
        serde_json::from_value(response.clone()).expect("Firehose's response shape");
    assert_eq!(parsed.records.len(), 1);
    let record = response["records"][0].as_object().expect("a record");
    let keys: BTreeSet<&str> = record.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["recordId", "result", "data", "metadata"])
    );
    assert_eq!(
        response["records"][0]["metadata"],
        json!({"partitionKeys": {"day": "2025-11-24"}})
    );
}

#[test]
fn an_empty_batch_is_an_empty_response() {
    assert_eq!(respond(&[]), json!({"records": []}));
}
