"""`dynamo.py policy`: the least-privilege IAM policies of a Pi, the watchdog and an administrator."""

from dynamo import INDEX_NAME, table_names, watchdog_key

# Everything flush, status and aggregate (run on the Pi, cron_example) do on DynamoDB; never Scan.
# DeleteItem: the aggregator's conditional delete of a marker of new hours. UpdateItem: the
# upgrade of tables of an earlier version (REMOVE pk_status), through their status-index, whose
# ARNs stay while such tables are supported. Every action is limited to the device's own keys
# (LeadingKeys): a device's credentials can write and delete its own items, never another
# device's (README, "What a stolen Pi can do"); BatchWriteItem can't be granted without its
# DeleteRequest anyway (IAM has no action for the deletes alone).
DEVICE_ACTIONS = (
    "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem",
)
ADMIN_ACTIONS = (
    "dynamodb:CreateTable", "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive", "dynamodb:UpdateTimeToLive",
)
PARQUET_KINDS = ("minutes", "hours", "days")  # the mirror's top-level folders


def table_arns(prefix, with_index=False):
    """Table ARNs of `prefix`; region and account are the only wildcards."""
    arns = [f"arn:aws:dynamodb:*:*:table/{name}" for name in table_names(prefix).values()]
    return arns + [f"{arn}/index/{INDEX_NAME}" for arn in arns] if with_index else arns


def policy_document(config, device, bucket=None, prefix=None, sns_topic_arn=None):
    """The IAM policy of one Pi: its own keys in its own tables, its own Parquet folders.

    dynamodb:LeadingKeys limits every item and query partition key to `device#NAME#...`: its
    minutes, hours and days partitions, its registry item (`device#NAME#registry`), its
    markers of new hours (`device#NAME#sensor#...#status#new`, also the status keys of a legacy
    table's status-index, read once by the upgrade). The only wildcards
    are the region and account in the ARNs, the key suffix after `device#NAME#` and the file
    path below `device=NAME/`.
    """
    from utils import _device

    device = _device("--device", device)
    statements = [
        {
            "Sid": "OwnItemsOnly",
            "Effect": "Allow",
            "Action": list(DEVICE_ACTIONS),
            "Resource": table_arns(config["table_prefix"], with_index=True),
            # ForAllValues is true on an empty set, so also require the keys to be present.
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"device#{device}#*"]},
                "Null": {"dynamodb:LeadingKeys": "false"},
            },
        },
        {
            # the watchdog's state of this device, read-only: the Pi keeps quiet about an
            # outage the watchdog already told (watchdog_outage)
            "Sid": "ReadWatchdogState",
            "Effect": "Allow",
            "Action": ["dynamodb:Query"],
            "Resource": table_arns(config["table_prefix"])[:1],
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [watchdog_key(device)[0]]},
                "Null": {"dynamodb:LeadingKeys": "false"},
            },
        },
        {
            "Sid": "DescribeOwnTables",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeTable"],
            "Resource": table_arns(config["table_prefix"]),
        },
    ]
    if bucket:
        # One folder per kind: a '*' between the prefix and device=NAME would also match
        # another device's folder with a device=NAME folder made inside it.
        statements.append({
            "Sid": "OwnParquetMirror",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}{kind}/device={device}/*"
                         for kind in PARQUET_KINDS],
        })
    if sns_topic_arn:  # the power-change notifications' SNS channel (notify.py)
        statements.append({
            "Sid": "PublishPowerChanges",
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": [sns_topic_arn],
        })
    return {"Version": "2012-10-17", "Statement": statements}


def watchdog_policy_document(config, sns_topic_arn=None):
    """The IAM policy of the watchdog: read every device's registry and readings in the
    minutes table, read and write its own state items; never Scan, never another table."""
    minutes = table_arns(config["table_prefix"])[:1]
    statements = [
        {
            "Sid": "ReadReadings",
            "Effect": "Allow",
            "Action": ["dynamodb:Query"],
            "Resource": minutes,
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["device#*"]},
                "Null": {"dynamodb:LeadingKeys": "false"},
            },
        },
        {
            "Sid": "OwnState",
            "Effect": "Allow",
            "Action": ["dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem"],
            "Resource": minutes,
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [watchdog_key("*")[0]]},
                "Null": {"dynamodb:LeadingKeys": "false"},
            },
        },
    ]
    if sns_topic_arn:
        statements.append({"Sid": "PublishAnnouncements", "Effect": "Allow",
                           "Action": ["sns:Publish"], "Resource": [sns_topic_arn]})
    return {"Version": "2012-10-17", "Statement": statements}


def status_page_policy_document(config):
    """The IAM policy of the status page (status_page.handler): read every device's minutes and
    days items and the watchdog's states; no write, no Scan, never the hours table."""
    arns = table_arns(config["table_prefix"])
    minutes, days = arns[0], arns[2]
    return {"Version": "2012-10-17", "Statement": [
        {
            "Sid": "ReadReadingsAndDays",
            "Effect": "Allow",
            "Action": ["dynamodb:Query"],
            "Resource": [minutes, days],
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["device#*"]},
                "Null": {"dynamodb:LeadingKeys": "false"},
            },
        },
        {
            "Sid": "ReadWatchdogStates",
            "Effect": "Allow",
            "Action": ["dynamodb:Query"],
            "Resource": [minutes],
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [watchdog_key("*")[0]]},
                "Null": {"dynamodb:LeadingKeys": "false"},
            },
        },
    ]}


def admin_policy_document(config):
    """The IAM policy of whoever runs `dynamo.py create-tables` (tables, TTL; no index)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "CreateTables",
        "Effect": "Allow",
        "Action": list(ADMIN_ACTIONS),
        "Resource": table_arns(config["table_prefix"]),
    }]}
