"""Create the AWS resources the code expects (idempotent); `make run` runs it against moto.

In production the deployment template (deploy/) owns these resources; this command is for the
embedded emulator and for a first look at a fresh account. Nothing is created on first use.
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from core.aws import aws_client
from proxy import contract


class Command(BaseCommand):
    help = (
        "Create the DynamoDB tables, the usage S3 bucket, the SNS alert topic (when "
        "ALERTS_SNS_TOPIC_ARN is set) and the SES sender identity."
    )

    def handle(self, *args, **options):
        dynamodb = aws_client("dynamodb")
        contract.create_tables(dynamodb)
        names = contract.table_names()
        self.stdout.write(f"DynamoDB tables ready: {', '.join(sorted(vars(names).values()))}")

        s3 = aws_client("s3")
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if settings.USAGE_BUCKET not in existing:
            kwargs = {"Bucket": settings.USAGE_BUCKET}
            if settings.AWS_REGION != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.AWS_REGION}
            s3.create_bucket(**kwargs)
        self.stdout.write(f"S3 bucket ready: {settings.USAGE_BUCKET}")

        topic = settings.ALERTS_SNS_TOPIC_ARN
        if topic:  # CreateTopic with an existing name returns that topic: idempotent
            made = aws_client("sns").create_topic(Name=topic.rsplit(":", 1)[-1])["TopicArn"]
            if made != topic:
                self.stderr.write(f"ALERTS_SNS_TOPIC_ARN is {topic}, but this account made {made}.")
            self.stdout.write(f"SNS alert topic ready: {made}")

        sender = settings.DEFAULT_FROM_EMAIL.rsplit("<", 1)[-1].rstrip(">").strip()
        aws_client("ses").verify_email_identity(EmailAddress=sender)
        self.stdout.write(f"SES sender identity ready: {sender}")
