"""The naive designs the benchmarks compare against, written as simple cron scripts do."""

import datetime as dt

import dynamo
import filebuffer


def naive_flush(client, table, buffer_dir):
    """One PutItem per buffered reading, then delete its file."""
    store = filebuffer.Buffer(buffer_dir)
    for path in store.pending():
        reading = store.load(path)
        client.put_item(TableName=table, Item=dynamo.minute_item(reading))
        path.unlink()


def naive_aggregate(client, tables, device, sensor, now):
    """Per hour: re-query the index for the next new item, query the hour, put the hour item,
    consume each minute with its own UpdateItem (REMOVE pk_status). No day batching."""
    import aggregation

    status = dynamo.status_key(device, sensor)
    done = set()
    while True:
        page = client.query(TableName=tables["minutes"], IndexName=dynamo.INDEX_NAME, Limit=1,
                            KeyConditionExpression="pk_status = :s",
                            ExpressionAttributeValues={":s": {"S": status}})
        if not page["Items"] or page["Items"][0]["pk"]["S"] in done:
            return
        pk = page["Items"][0]["pk"]["S"]
        done.add(pk)
        hour = dynamo.parse_partition(pk)[2]
        items = client.query(TableName=tables["minutes"], KeyConditionExpression="pk = :pk",
                             ExpressionAttributeValues={":pk": {"S": pk}})["Items"]
        readings = [(dynamo.period_start(i["pk"]["S"], i["sk"]["S"]), int(i["reading"]["N"])) for i in items]
        stats = aggregation.pin_stats(readings, hour, hour + dt.timedelta(hours=1), now, None,
                                      aggregation.off_runs(readings))
        client.put_item(TableName=tables["hours"], Item=dynamo.hour_item(device, sensor, hour, stats, now))
        for item in items:
            client.update_item(TableName=tables["minutes"], Key={"pk": item["pk"], "sk": item["sk"]},
                               UpdateExpression="REMOVE pk_status")


# The seed's minute: each sensor's cron script a bare process that imports boto3 and puts its
# one item (run as `python -c SEED_PROCESS TABLE SENSOR`).
SEED_PROCESS = (
    "import sys, boto3; table, sensor = sys.argv[1:3]; boto3.client('dynamodb').put_item(TableName=table, "
    "Item={'pk': {'S': f'device#bench_rpi#sensor#{sensor}#date#2025-06-01-00'}, 'sk': {'S': 'time#00'}})"
)
# The floor of a minute with both sensors: one interpreter, one boto3 import, one client, one
# BatchWriteItem of both readings (`python -c FLOOR_PROCESS TABLE`).
FLOOR_PROCESS = (
    "import sys, boto3; table = sys.argv[1]; boto3.client('dynamodb').batch_write_item(RequestItems={table: ["
    "{'PutRequest': {'Item': {'pk': {'S': f'device#bench_rpi#sensor#{s}#date#2025-06-01-00'}, "
    "'sk': {'S': 'time#00'}}}} for s in ('4', 'bme280')]})"
)
