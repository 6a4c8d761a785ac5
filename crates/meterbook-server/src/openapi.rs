//! The OpenAPI 3 description, built from one table of the endpoints, and a
//! readable `/docs` page rendered from the same table on the server (no
//! scripts, no CDN). A test checks that every path here is routed.

use serde_json::{json, Map, Value};

/// (method, path, summary, query parameters, description)
pub const ENDPOINTS: &[(&str, &str, &str, &[&str], &str)] = &[
    ("get", "/healthz", "Health check", &[], "200 when the server runs; no key needed."),
    ("get", "/v3/enrollments/{enrollmentNumber}/billingPeriods", "Billing periods", &[], "Newest first, with links to each period's reports (null where the period has none or the key's scope may not see it)."),
    ("get", "/v3/enrollments/{enrollmentNumber}/balancesummary", "Balance and charges, current period", &[], "Enterprise administrators only."),
    ("get", "/v3/enrollments/{enrollmentNumber}/billingPeriods/{billingPeriod}/balancesummary", "Balance and charges of a period", &[], "Enterprise administrators only. Exact decimal numbers."),
    ("get", "/v3/enrollments/{enrollmentNumber}/usagedetails", "Usage details, current period", &["$top", "pageSize", "skiptoken"], "Pages of up to 10,000 rows; follow nextLink (null on the last page). Keyset cursor: stable while usage arrives."),
    ("get", "/v3/enrollments/{enrollmentNumber}/billingPeriods/{billingPeriod}/usagedetails", "Usage details of a period", &["$top", "pageSize", "skiptoken"], "Rows booked in the period: its own days, then corrections booked into it."),
    ("get", "/v3/enrollments/{enrollmentNumber}/usagedetailsbycustomdate", "Usage details of a date range", &["startTime", "endTime", "$top", "pageSize", "skiptoken"], "Rows dated in the range (inclusive)."),
    ("get", "/v3/enrollments/{enrollmentNumber}/usagedetails/download", "Usage details as CSV", &["billingPeriod", "startTime", "endTime"], "Streamed; gzip with Accept-Encoding: gzip."),
    ("post", "/v3/enrollments/{enrollmentNumber}/usagedetails/submit", "Request a usage report prepared in the background", &["billingPeriod", "startTime", "endTime", "format"], "202 with the job: {id, enrollmentNumber, requestedOn, status, blobPath, reportUrl, startDate, endDate, ...}; poll reportUrl. Status: 1 Queued, 2 InProgress, 3 Completed, 4 Failed, 5 NoDataFound, 6 ReadyToDownload, 7 TimedOut, 8 Cancelled. An identical request while one is queued or running shares it (200). billingPeriod=P selects the rows booked in P, as usagedetails/download?billingPeriod=P does (corrections booked in P included, P's own days booked later left out; the job says kind billingPeriod and billingPeriod P); startTime/endTime select rows by usage date (kind dateRange)."),
    ("get", "/v3/enrollments/{enrollmentNumber}/reports", "List report jobs", &[], "The caller's jobs (all of the enrollment's for an enterprise administrator), newest first, with progress (rows done, rows expected, bytes)."),
    ("post", "/v3/enrollments/{enrollmentNumber}/reports", "Request a report with the full filter set", &[], "Body: {startDate, endDate, accounts: [names], departments: [names], format: csv|csv.gz|parquet|focus-csv|focus-parquet}, or billingPeriod (YYYYMM, inside the term) instead of startDate and endDate. A range selects rows by usage date, up to 36 months inside the term; a billing period selects the rows booked in it, as usagedetails/download?billingPeriod= does (corrections booked in it included). Both, or neither, is a 400; a filter outside the key's scope is a 403."),
    ("get", "/v3/enrollments/{enrollmentNumber}/reports/{reportId}", "A report job", &[], "What polling reportUrl returns; blobPath is a fresh signed link once the file is ready and downloadable. fileState: none, available, withheld (it shows charges the enrollment now hides from the role) or expired (the file is gone); for the last two blobPath is empty and fileError says why."),
    ("delete", "/v3/enrollments/{enrollmentNumber}/reports/{reportId}", "Cancel a report job", &[], "409 if it has already ended."),
    ("post", "/v3/enrollments/{enrollmentNumber}/reports/{reportId}/link", "A fresh download link", &["lifetimeHours"], "Signed and expiring; works without a key until it expires."),
    ("get", "/v3/enrollments/{enrollmentNumber}/reports/{reportId}/download", "Download a report with the key", &[], "HEAD, Range (206/416), ETag (the file's sha256) and If-None-Match supported."),
    ("get", "/v3/enrollments/{enrollmentNumber}/exports", "List scheduled exports", &[], "Enterprise administrators only (others 403). Each schedule: id, name, folder, schedule (daily, monthly, once; once with startDate and endDate), format, createdOn, createdBy. Files land in <export root>/<enrollment>/<folder>/<run key>/ with a manifest.json written last; see docs/exports.md."),
    ("post", "/v3/enrollments/{enrollmentNumber}/exports", "Create a scheduled export", &[], "Read-write enterprise administrators only. Body: {name, folder (1 to 64 letters, digits, - and _), schedule: daily|monthly|once, format: csv|csv.gz|parquet|focus-csv|focus-parquet, startDate and endDate (once only)}. daily: each day, the month to date of the days that have ended; monthly: each closed billing period; once: the range, inside the term. 201 with the schedule; 409 if the enrollment has one of that name or folder, or already has 20 schedules."),
    ("delete", "/v3/enrollments/{enrollmentNumber}/exports/{exportId}", "Delete a scheduled export", &[], "Read-write enterprise administrators only. Its runs' records go with it; files already written stay. 204."),
    ("get", "/v3/enrollments/{enrollmentNumber}/exports/{exportId}/runs", "Runs of a scheduled export", &[], "Newest run key first: status (running, succeeded, retrying, failed), attempts, startedOn, finishedOn, retryOn, error, and the manifest of a successful run."),
    ("post", "/v3/enrollments/{enrollmentNumber}/exports/{exportId}/run", "Run a scheduled export now", &[], "Read-write enterprise administrators only. Runs the current key (the range of a once export, today's daily key, the latest closed period) again if it already ran, replacing its files, and answers with the run as it ended, or, if it takes more than 10 s, with the run still going (status running: it goes on in the background, and GET .../runs shows how it ended); 409 while another node runs that key or when this server has no export root; 400 for a monthly export with no closed period yet."),
    ("get", "/downloads/{reportId}", "Download a report through its signed link", &["scope", "expires", "signature"], "No key needed. 403 InvalidSignature when any byte of the link was changed, 403 LinkExpired after it expires, 410 once the report's retention is over."),
    ("get", "/v3/enrollments/{enrollmentNumber}/forecast", "Forecast of charges and of the commitment's run-out", &["horizon"], "Meterbook's own endpoint beside the v3 shapes. horizon=period (default: the current billing period) or term. Charges to date in the key's scope (actual: the figure balancesummary and the portal show), the projection to the horizon's end with its range (projectedLow, projectedHigh), the daily burn rate it comes from (mean of the last 30 days' charges through asOf; range: means of the lower and upper half of those days; basisDays) and method; money as exact decimal numbers, dates YYYY-MM-DD. commitment (enterprise keys only, null otherwise): balance, total, runsOutOn with earliest and latest (null when it lasts past the term), alreadyUsed. 403 when the scope may not see charges."),
    ("get", "/v3/enrollments/{enrollmentNumber}/pricesheet", "Price sheet, current period", &[], "Enterprise administrators only; one entry per tier."),
    ("get", "/v3/enrollments/{enrollmentNumber}/billingPeriods/{billingPeriod}/pricesheet", "Price sheet of a period", &[], "Enterprise administrators only."),
    ("get", "/v3/enrollments/{enrollmentNumber}/marketplacecharges", "Marketplace charges, current period", &["$top", "pageSize", "skiptoken"], "Rows of third-party meters."),
    ("get", "/v3/enrollments/{enrollmentNumber}/billingPeriods/{billingPeriod}/marketplacecharges", "Marketplace charges of a period", &["$top", "pageSize", "skiptoken"], ""),
    ("get", "/v3/enrollments/{enrollmentNumber}/marketplacechargesbycustomdate", "Marketplace charges of a date range", &["startTime", "endTime", "$top", "pageSize", "skiptoken"], ""),
    ("get", "/v3/enrollments/{enrollmentNumber}/costanalysis", "Cost analysis", &["groupBy", "granularity", "startDate", "endDate", "filter", "format"], "Charges and records within the key's scope grouped by groupBy (tag:KEY, resourceGroup, meter, region, subscription, department, account, service, chargeType; default subscription), per day or month (granularity, default daily), actual and accumulated. startDate/endDate (YYYY-MM-DD) inside the term: at most 92 days daily, 36 months monthly (whole billing periods). filter=DIMENSION=VALUE, repeatable (tag:env=prod, region=westeurope; one dimension's values ORed, dimensions ANDed; a value outside the scope matches nothing). A billing period's charges are its statement's figure (the rounded exact sum for a department or account) allocated over the period's cells, so a full period adds up to the statement and a cell has the same value whatever the filters or dates. Costs are null where the scope may not see them. Rows without the tag are grouped as (untagged). format=csv streams the rows as CSV."),
    ("get", "/v3/enrollments/{enrollmentNumber}/costanalysis/download", "Cost analysis as CSV", &["groupBy", "granularity", "startDate", "endDate", "filter"], "The rows of costanalysis with the same parameters, streamed as CSV with a header row: Date (Month when monthly), the grouping, Records, Cost, AccumulatedCost, Currency."),
    ("get", "/v3/enrollments/{enrollmentNumber}/keys", "List API keys", &[], "Keys of the scopes the caller's key covers; never the secret."),
    ("post", "/v3/enrollments/{enrollmentNumber}/keys", "Generate (or regenerate) an API key", &[], "Body: {scope: enrollment|department|account, name, slot: primary|secondary, expiresInDays}. The key is shown once."),
    ("post", "/v3/enrollments/{enrollmentNumber}/keys/disable", "Disable an API key", &[], "Body: {scope, name, slot}."),
    ("get", "/v3/enrollments/{enrollmentNumber}/budgets", "List budgets with their figures now", &[], "Meterbook's own. The budgets whose scope lies within the key's scope, each with actual (charges so far in its current period, or the term through the current period: the statement's figures), forecast, usedPercent, the commitment balance (enrollment budgets) and which thresholds are crossed. Money as exact decimal strings. 403 for a role that may not see charges."),
    ("post", "/v3/enrollments/{enrollmentNumber}/budgets", "Create a budget", &[], "Read-write enterprise administrators. Body: {name, scope: enrollment|department|account, scopeName (the department's or account's name), cadence: monthly|term, amount (decimal string, more than 0), thresholds: [{basis: actual|forecast|balance, percent: 1 to 1000 (balance: 1 to 100)}] (1 to 10)}. A balance threshold (commitment left at or below percent% of the term's purchases) only on an enrollment budget. At most 100 budgets per enrollment (409). Each threshold fires once per period (monthly) or term, recorded as an event."),
    ("get", "/v3/enrollments/{enrollmentNumber}/budgets/{budgetId}", "A budget with its figures now", &[], "404 when it is not within the key's scope."),
    ("delete", "/v3/enrollments/{enrollmentNumber}/budgets/{budgetId}", "Delete a budget", &[], "Read-write enterprise administrators. Its recorded events stay."),
    ("get", "/v3/enrollments/{enrollmentNumber}/notifications/channels", "List notification channels", &[], "Enterprise administrators. E-mail addresses and webhook URLs that receive events: alert (budget thresholds), period-closed, watermark."),
    ("post", "/v3/enrollments/{enrollmentNumber}/notifications/channels", "Add a notification channel", &[], "Read-write enterprise administrators. Body: {kind: email|webhook, address (an e-mail address, or an http(s) URL without credentials), events: [alert|period-closed|watermark]}. For a webhook the answer holds signingSecret (whsec_...), shown once: webhooks are signed with HMAC-SHA256 under it. At most 20 channels (409). Data events reach a channel only for changes after it was added."),
    ("delete", "/v3/enrollments/{enrollmentNumber}/notifications/channels/{channelId}", "Remove a notification channel", &[], "Read-write enterprise administrators. Its pending webhook deliveries are given up."),
    ("get", "/v3/enrollments/{enrollmentNumber}/notifications/events", "Recent events", &["limit"], "Newest first: data events, and the alerts of budgets within the key's scope (none where charges are hidden). payload is what webhooks receive."),
    ("get", "/v3/enrollments/{enrollmentNumber}/notifications/deliveries", "The delivery log", &["limit"], "Enterprise administrators. Each e-mail or webhook delivery of an event, newest first: status pending|delivered|failed, attempts, next attempt, last error."),
    ("get", "/rest/{enrollmentNumber}/usage-report", "Legacy usage report", &["month", "type", "fmt"], "month=YYYY-MM, type=detail|summary, fmt=json|csv. Detail JSON is an array keyed by the Enterprise Agreement's detail-report columns."),
    ("post", "/operator/enrollments", "Operator: create an enrollment", &[], "Operator token required."),
    ("put", "/operator/enrollments/{enrollmentNumber}/settings", "Operator: view-charges settings", &[], ""),
    ("post", "/operator/enrollments/{enrollmentNumber}/hierarchy", "Operator: upsert the hierarchy (CSV body)", &[], ""),
    ("put", "/operator/enrollments/{enrollmentNumber}/prices/{billingPeriod}", "Operator: replace a period's price sheet (CSV body)", &[], ""),
    ("post", "/operator/enrollments/{enrollmentNumber}/usage", "Operator: ingest usage (CSV or NDJSON body, any size)", &["format", "skipInvalid"], "All-or-nothing unless skipInvalid=true; idempotent by RecordId; 422 lists the invalid lines."),
    ("post", "/operator/enrollments/{enrollmentNumber}/purchases", "Operator: add a purchase", &[], ""),
    ("post", "/operator/enrollments/{enrollmentNumber}/adjustments", "Operator: add an adjustment", &[], ""),
    ("put", "/operator/enrollments/{enrollmentNumber}/watermark", "Operator: set 'usage complete through'", &[], ""),
    ("post", "/operator/enrollments/{enrollmentNumber}/periods/{billingPeriod}/close", "Operator: close a period", &[], ""),
    ("post", "/operator/enrollments/{enrollmentNumber}/keys", "Operator: create an enterprise administrator's key", &[], ""),
];

/// The hierarchy CSV: the header and rows of the seven columns (the guide's format).
const HIERARCHY_CSV: &str = "^DepartmentName,DepartmentCostCenter,AccountName,AccountOwnerEmail,AccountCostCenter,SubscriptionGuid,SubscriptionName\n([A-Z][a-z]{0,11},[A-Z0-9-]{0,8},[a-z][a-z0-9-]{0,15},[a-z]{1,12}@[a-z]{1,12}\\.example,[A-Z0-9-]{0,8},[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12},[a-z][a-z0-9-]{0,15}\n){1,3}$";

/// A price sheet CSV: the header and one first-tier row (the guide's format).
const PRICES_CSV: &str = "^MeterId,MeterName,MeterCategory,MeterSubCategory,MeterRegion,UnitOfMeasure,PartNumber,UnitPrice,IncludedQuantity,TierMinimumUnits,ChargesBilledSeparately,PublisherName,OfferName,PlanName\n[a-z][a-z0-9-]{0,15},[A-Za-z0-9 ]{0,12},[A-Za-z ]{0,12},[A-Za-z ]{0,12},[A-Za-z ]{0,8},[A-Za-z0-9 /]{0,8},[A-Z0-9-]{0,10},[0-9]{1,4}(\\.[0-9]{1,6})?,[0-9]{1,3},0,(true|false),,,\n$";

/// A positive amount (purchases).
const POSITIVE: &str = "^([1-9][0-9]{0,11}(\\.[0-9]{1,2})?|0\\.([1-9][0-9]?|0[1-9]))$";

/// The request bodies of the operator API, as precise as the server checks
/// them, so that a client (or a fuzzer) generating from the description sends
/// what the server takes.
fn operator_body(path: &str) -> Option<Value> {
    if !path.starts_with("/operator/") {
        return None;
    }
    let json_body = |required: &[&str], properties: Value| {
        json!({"required": true, "content": {"application/json": {"schema": {
            "type": "object", "required": required, "additionalProperties": false,
            "properties": properties}}}})
    };
    let csv_body =
        |schema: Value| json!({"required": true, "content": {"text/csv": {"schema": schema}}});
    // Inside the enrollment's term (and, for entries, an open period) too.
    let date = json!({"type": "string", "format": "date"});
    let last = path.rsplit('/').next().unwrap_or_default();
    Some(match last {
        "enrollments" => json_body(
            &["number", "name", "currency", "start", "end"],
            json!({
                "number": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
                "name": {"type": "string", "pattern": "\\S"},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "start": date,
                "end": date,
                "departmentAdminsViewCharges": {"type": "boolean"},
                "accountOwnersViewCharges": {"type": "boolean"}}),
        ),
        "settings" => json_body(
            &[],
            json!({"departmentAdminsViewCharges": {"type": "boolean"},
                   "accountOwnersViewCharges": {"type": "boolean"}}),
        ),
        "purchases" | "adjustments" => json_body(
            &["date", "amount", "description"],
            json!({
                "date": date,
                "amount": {"type": "string", "pattern": if last == "purchases" { POSITIVE } else { "^-?[0-9]{1,12}(\\.[0-9]{1,2})?$" },
                           "description": "In the enrollment's currency, at most its minor-unit decimals; a purchase is positive."},
                "description": {"type": "string", "maxLength": 1024}}),
        ),
        "watermark" => json_body(&["date"], json!({"date": date})),
        "keys" => json_body(
            &[],
            json!({"slot": {"type": "string", "enum": ["primary", "secondary"]},
                   "expiresInDays": {"type": "integer", "minimum": 1, "maximum": 730},
                   "readOnly": {"type": "boolean"}}),
        ),
        "hierarchy" => csv_body(json!({"type": "string", "pattern": HIERARCHY_CSV})),
        "usage" => csv_body(json!({"type": "string"})),
        _ if path.contains("/prices/") => {
            csv_body(json!({"type": "string", "pattern": PRICES_CSV}))
        }
        _ => return None,
    })
}

/// The request bodies of budgets and channels, as the server checks them.
fn notify_body(path: &str) -> Option<Value> {
    let schema = if path.ends_with("/budgets") {
        json!({"type": "object", "additionalProperties": false,
               "required": ["name", "scope", "cadence", "amount", "thresholds"],
               "properties": {
                   "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*\\S[^\\x00-\\x1f\\x7f-\\x9f]*$"},
                   "scope": {"type": "string", "enum": ["enrollment", "department", "account"]},
                   "scopeName": {"type": "string"},
                   "cadence": {"type": "string", "enum": ["monthly", "term"]},
                   "amount": {"type": "string", "pattern": POSITIVE,
                              "description": "In the enrollment's currency, at most its minor-unit decimals."},
                   "thresholds": {"type": "array", "minItems": 1, "maxItems": 10, "items": {
                       "type": "object", "additionalProperties": false, "required": ["basis", "percent"],
                       "properties": {
                           "basis": {"type": "string", "enum": ["actual", "forecast", "balance"]},
                           "percent": {"type": "integer", "minimum": 1, "maximum": 1000}}}}}})
    } else if path.ends_with("/notifications/channels") {
        json!({"type": "object", "additionalProperties": false,
               "required": ["kind", "address", "events"],
               "properties": {
                   "kind": {"type": "string", "enum": ["email", "webhook"]},
                   "address": {"type": "string", "maxLength": 2048},
                   "events": {"type": "array", "minItems": 1, "maxItems": 3, "uniqueItems": true,
                              "items": {"type": "string", "enum": ["alert", "period-closed", "watermark"]}}}})
    } else {
        return None;
    };
    Some(json!({"required": true, "content": {"application/json": {"schema": schema}}}))
}

/// `POST …/exports`: a daily or monthly schedule takes no range, a once
/// schedule needs one; two closed shapes, so a body matches exactly one.
fn export_body() -> Value {
    let common = |schedule: Value, range: bool| {
        let mut properties = json!({
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*\\S[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
            "folder": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"},
            "schedule": schedule,
            "format": {"type": "string", "enum": ["csv", "csv.gz", "parquet", "focus-csv", "focus-parquet"]}});
        let mut required = vec!["name", "folder", "schedule"];
        if range {
            properties["startDate"] = json!({"type": "string", "format": "date"});
            properties["endDate"] = json!({"type": "string", "format": "date"});
            required.extend(["startDate", "endDate"]);
        }
        json!({"type": "object", "required": required, "additionalProperties": false,
               "properties": properties})
    };
    json!({"required": true, "content": {"application/json": {"schema": {"oneOf": [
        common(json!({"type": "string", "enum": ["daily", "monthly"]}), false),
        common(json!({"type": "string", "enum": ["once"]}), true),
    ]}}}})
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The OpenAPI 3.0 document.
pub fn spec() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, query, description) in ENDPOINTS {
        let mut params: Vec<Value> = Vec::new();
        for name in [
            "enrollmentNumber",
            "billingPeriod",
            "reportId",
            "budgetId",
            "channelId",
            "exportId",
        ] {
            if path.contains(&format!("{{{name}}}")) {
                let schema = match name {
                    "billingPeriod" => {
                        json!({"type": "string", "pattern": "^[0-9]{4}(0[1-9]|1[0-2])$"})
                    }
                    "reportId" | "exportId" => {
                        json!({"type": "string", "pattern": "^[0-9a-f]{32}$"})
                    }
                    "budgetId" | "channelId" => {
                        json!({"type": "integer", "minimum": 1, "maximum": 9_007_199_254_740_991_i64})
                    }
                    _ => json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}),
                };
                params
                    .push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
            }
        }
        let custom = path.ends_with("bycustomdate");
        for q in *query {
            let (schema, required) = match *q {
                "$top" | "pageSize" => (
                    json!({"type": "integer", "minimum": 1, "maximum": 10000}),
                    false,
                ),
                "startTime" | "endTime" => (json!({"type": "string", "format": "date"}), custom),
                "billingPeriod" => (
                    json!({"type": "string", "pattern": "^[0-9]{4}(0[1-9]|1[0-2])$"}),
                    false,
                ),
                "month" => (
                    json!({"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}),
                    true,
                ),
                "type" => (
                    json!({"type": "string", "enum": ["detail", "summary"]}),
                    false,
                ),
                "fmt" => (json!({"type": "string", "enum": ["json", "csv"]}), false),
                "horizon" => (json!({"type": "string", "enum": ["period", "term"]}), false),
                "format" if path.ends_with("/costanalysis") => {
                    (json!({"type": "string", "enum": ["json", "csv"]}), false)
                }
                "groupBy" => (
                    json!({"type": "string", "pattern": "^(tag:.{1,512}|resourceGroup|meter|region|subscription|department|account|service|chargeType)$"}),
                    false,
                ),
                "granularity" => (
                    json!({"type": "string", "enum": ["daily", "monthly"]}),
                    false,
                ),
                "startDate" | "endDate" => (json!({"type": "string", "format": "date"}), false),
                "filter" => (
                    json!({"type": "string", "pattern": "^(tag:[^=]{1,512}|resourceGroup|meter|region|subscription|department|account|service|chargeType)=.{0,512}$"}),
                    false,
                ),
                "format" if path.ends_with("/submit") => (
                    json!({"type": "string", "enum": ["csv", "csv.gz", "parquet", "focus-csv", "focus-parquet"]}),
                    false,
                ),
                "format" => (
                    json!({"type": "string", "enum": ["auto", "csv", "ndjson"]}),
                    false,
                ),
                "lifetimeHours" => (json!({"type": "integer", "minimum": 1}), false),
                "limit" => (
                    json!({"type": "integer", "minimum": 1, "maximum": 500}),
                    false,
                ),
                "expires" => (json!({"type": "integer"}), true),
                "scope" | "signature" => (json!({"type": "string"}), true),
                "skipInvalid" => (json!({"type": "boolean"}), false),
                "skiptoken" => (
                    json!({"type": "string", "pattern": "^([0-9a-f]{2})+$"}),
                    false,
                ),
                _ => (json!({"type": "string"}), false),
            };
            params.push(json!({"name": q, "in": "query", "required": required, "schema": schema}));
        }
        let mut responses = Map::new();
        responses.insert("200".into(), json!({"description": "OK"}));
        if *path != "/healthz" {
            responses.insert(
                "304".into(),
                json!({"description": "Not modified (If-None-Match)"}),
            );
            responses.insert("400".into(), error_response("Bad request"));
            responses.insert(
                "401".into(),
                error_response("Missing, malformed, unknown, disabled or expired key"),
            );
            responses.insert(
                "403".into(),
                error_response("The key's scope may not see this"),
            );
            responses.insert("404".into(), error_response("Not found"));
            responses.insert(
                "429".into(),
                error_response("Rate limited; see Retry-After"),
            );
        }
        if path.contains("/reports") || path.ends_with("/submit") || path.starts_with("/downloads")
        {
            responses.insert(
                "202".into(),
                json!({"description": "Accepted: the job is queued"}),
            );
            responses.insert(
                "206".into(),
                json!({"description": "Partial content (Range)"}),
            );
            responses.insert(
                "409".into(),
                error_response("The job is not in a state for this"),
            );
            responses.insert(
                "410".into(),
                error_response("The report is gone (retention over)"),
            );
            responses.insert("416".into(), error_response("Range outside the file"));
        }
        if path.starts_with("/downloads") {
            responses.insert(
                "304".into(),
                json!({"description": "Not modified (If-None-Match)"}),
            );
            responses.insert("400".into(), error_response("Bad request"));
            responses.insert(
                "403".into(),
                error_response("InvalidSignature or LinkExpired"),
            );
            responses.insert("404".into(), error_response("Not found"));
        }
        if *method != "get" {
            responses.insert("201".into(), json!({"description": "Created"}));
            responses.insert(
                "409".into(),
                error_response("Conflicts with what is stored"),
            );
            responses.insert(
                "422".into(),
                error_response("Invalid records; nothing stored"),
            );
        }
        if *method == "delete" && path.contains("/exports/") {
            responses.insert("204".into(), json!({"description": "Deleted"}));
        }
        // Bounds and the timeout that hold for every route (docs/design-notes.md).
        responses.insert(
            "414".into(),
            error_response("The query string is over its bound"),
        );
        responses.insert(
            "431".into(),
            error_response("The request headers are over their bound"),
        );
        responses.insert(
            "503".into(),
            error_response("Not answered within the request timeout"),
        );
        if *method != "get" {
            responses.insert("413".into(), error_response("The body is over its bound"));
        }
        let mut op = json!({
            "summary": summary,
            "description": description,
            "parameters": params,
            "responses": responses,
            "security": if path.starts_with("/healthz") || path.starts_with("/downloads") { json!([]) } else { json!([{"bearer": []}]) },
        });
        let bodiless = path.ends_with("/submit")
            || path.ends_with("/link")
            || path.ends_with("/run")
            || *method == "delete";
        if *method != "get" && !bodiless && path.ends_with("/reports") {
            // A date range or a billing period, never both: two closed
            // shapes, so a body matches exactly one.
            let shape = |span: serde_json::Value, required: &[&str]| {
                let mut properties = json!({
                    "accounts": {"type": "array", "items": {"type": "string"}},
                    "departments": {"type": "array", "items": {"type": "string"}},
                    "format": {"type": "string", "enum": ["csv", "csv.gz", "parquet", "focus-csv", "focus-parquet"]}});
                if let (Some(p), Some(s)) = (properties.as_object_mut(), span.as_object()) {
                    p.extend(s.clone());
                }
                json!({"type": "object", "required": required, "additionalProperties": false,
                       "properties": properties})
            };
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
            "oneOf": [
                shape(json!({
                    "startDate": {"type": "string", "format": "date"},
                    "endDate": {"type": "string", "format": "date"}}),
                    &["startDate", "endDate"]),
                shape(json!({
                    "billingPeriod": {"type": "string", "pattern": "^[0-9]{4}(0[1-9]|1[0-2])$"}}),
                    &["billingPeriod"]),
            ]}}}});
        } else if *method != "get" && !bodiless {
            op["requestBody"] = if let Some(body) = operator_body(path) {
                body
            } else if let Some(body) = notify_body(path) {
                body
            } else if path.ends_with("/exports") {
                export_body()
            } else if path.ends_with("/keys") && path.starts_with("/v3")
                || path.ends_with("/keys/disable")
            {
                json!({"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["scope"], "additionalProperties": false,
                    "properties": {
                        "scope": {"type": "string", "enum": ["enrollment", "department", "account"]},
                        "name": {"type": "string"},
                        "slot": {"type": "string", "enum": ["primary", "secondary"]},
                        "expiresInDays": {"type": "integer", "minimum": 1, "maximum": 730}}}}}})
            } else {
                json!({"required": false, "content": {"application/json": {"schema": {"type": "object"}}}})
            };
        }
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(method.to_string(), op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Meterbook Reporting API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Enterprise Agreement Reporting API v3 shapes, API access keys, and the operator API."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}
        }
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A readable page of the same table.
pub fn docs_html() -> String {
    let mut rows = String::new();
    for (method, path, summary, query, description) in ENDPOINTS {
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td><strong>{}</strong><br>{}{}</td></tr>\n",
            method.to_uppercase(),
            esc(path),
            esc(summary),
            esc(description),
            if query.is_empty() { String::new() } else { format!("<br>Query: <code>{}</code>", esc(&query.join(", "))) }
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Meterbook API</title>
<style>body{{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}}
table{{border-collapse:collapse;width:100%}}td{{border-top:1px solid #ccc;padding:.5rem;vertical-align:top}}
code{{background:#f3f3f3;padding:0 .2rem}}</style></head><body>
<h1>Meterbook Reporting API</h1>
<p>Send <code>Authorization: bearer &lt;key&gt;</code> with an API key (<code>mbk_…</code>) on customer endpoints and an operator token (<code>mbo_…</code>) on <code>/operator</code> ones.
Paths and query parameter names are case-insensitive. Every response carries <code>ETag</code> and <code>X-Usage-Complete-Through</code>; errors are <code>{{"error":{{"code","message"}}}}</code>.
The machine-readable description is at <a href="/openapi.json">/openapi.json</a>.</p>
<table><thead><tr><th>Method</th><th>Path</th><th>What</th></tr></thead><tbody>
{rows}</tbody></table></body></html>"#
    )
}
