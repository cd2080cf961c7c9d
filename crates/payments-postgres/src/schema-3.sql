-- Version 3: the fleet's ingress. An account-source may keep its provider's webhook secret,
-- sealed with the master key as its API key is (bound to the account and source, under its own
-- context); NULL when none was given (PayPro's webhooks are then refused). `hinted_at` says a
-- verified delivery for it waits in the inbox: a worker leases a hinted account-source as it
-- leases a due one, reads its hints, and clears it on release unless a delivery came that the
-- read did not see (a hint never moves `next_run_at`).
ALTER TABLE ledger.account_sources ADD COLUMN sealed_webhook_secret bytea;
ALTER TABLE ledger.account_sources ADD COLUMN hinted_at timestamptz;
CREATE INDEX account_sources_hinted ON ledger.account_sources (hinted_at)
    WHERE hinted_at IS NOT NULL;
