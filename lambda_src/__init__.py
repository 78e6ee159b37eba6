"""The pipeline's transaction processor (deployed as the Lambda function ``{name}-processor``).

The package is zipped as-is (``lambda_src/`` at the zip root) with the packages of
``requirements.txt`` vendored beside it; the handler string is
``lambda_src.handler.lambda_handler``. Modules are small and testable without AWS:

- ``config``      settings from the environment, validated once per container
- ``envelopes``   what one SQS record body contains (SNS, EventBridge/S3 events, transactions)
- ``readers``     streaming CSV / JSON Lines / JSON array readers, optionally gzip-compressed
- ``validation``  one transaction: precise reasons for rejects, normalisation for storage
- ``storage``     DynamoDB: idempotent batched writes, alert claims
- ``alerts``      the SNS alert messages (PublishBatch)
- ``persist``     store + alert, exactly once in effect: the protocol and its residual windows
- ``rejects``     where invalid input goes: the DLQ (messages) and ``rejected/`` (file rows)
- ``files``       one S3 object, streamed row by row in bounded memory
- ``batch``       one SQS batch: unwrap, validate, store across records, report failures
- ``handler``     the Lambda entry point: Powertools logging, metrics, partial batch responses
- ``errors``, ``observability``: the failure taxonomy and the shared Powertools Logger
"""
