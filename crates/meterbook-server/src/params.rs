//! Request normalisation: case-insensitive paths and query parameters.

use crate::ApiError;
use axum::extract::Request;
use axum::http::Uri;
use std::collections::HashMap;

/// Lower-cases every path segment except the enrollment number (after
/// `enrollments` or `rest`), which is an identifier.
pub fn normalize_path(mut req: Request) -> Request {
    let uri = req.uri();
    let path = uri.path();
    // The portal's URLs are the server's own links, never typed by API
    // clients: they are left as they are (enrollment numbers keep their case).
    if path == "/portal" || path.starts_with("/portal/") {
        return req;
    }
    let mut out = String::with_capacity(path.len());
    let mut keep_next = false;
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if keep_next {
            out.push_str(seg);
            keep_next = false;
        } else {
            let lower = seg.to_ascii_lowercase();
            keep_next = lower == "enrollments" || (i == 1 && lower == "rest");
            out.push_str(&lower);
        }
    }
    if out != path {
        let pq = match uri.query() {
            Some(q) => format!("{out}?{q}"),
            None => out,
        };
        let mut parts = uri.clone().into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(u) = Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
    }
    req
}

/// Query parameters with lower-cased names (`startTime` = `starttime`).
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query.unwrap_or(""))?;
        Ok(Params(
            pairs
                .into_iter()
                // An empty value is the same as an absent parameter.
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.as_str())
    }

    /// A parameter whose value must be one of `allowed` (case-insensitive); returns it lower-cased.
    pub fn choice(&self, name: &str, allowed: &[&str], default: &str) -> Result<String, ApiError> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(v) => {
                let l = v.to_ascii_lowercase();
                if allowed.contains(&l.as_str()) {
                    Ok(l)
                } else {
                    Err(ApiError::BadRequest(format!(
                        "`{name}` must be one of {}, not `{}`",
                        allowed.join(", "),
                        meterbook_core::quote::quote(v)
                    )))
                }
            }
        }
    }
}

/// Every value of a repeatable parameter `name` (case-insensitive), in order;
/// empty values left out (as [`Params::parse`] leaves them out).
pub fn all_values(query: Option<&str>, name: &str) -> Result<Vec<String>, ApiError> {
    Ok(serde_urlencoded_pairs(query.unwrap_or(""))?
        .into_iter()
        .filter(|(k, v)| k.eq_ignore_ascii_case(name) && !v.is_empty())
        .map(|(_, v)| v)
        .collect())
}

fn serde_urlencoded_pairs(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| ApiError::BadRequest("malformed query string".into()))?,
    )
    .map(|axum::extract::Query(v)| v)
    .map_err(|e| {
        let e = meterbook_core::quote::clip(&e.to_string());
        ApiError::BadRequest(format!("malformed query string: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::normalize_path;
    use axum::extract::Request;

    fn norm(p: &str) -> String {
        let req = Request::builder()
            .uri(p)
            .body(axum::body::Body::empty())
            .unwrap();
        normalize_path(req).uri().to_string()
    }

    #[test]
    fn api_paths_fold_case_but_keep_enrollment_numbers_and_portal_paths() {
        assert_eq!(
            norm("/V3/Enrollments/E100/BillingPeriods?X=1"),
            "/v3/enrollments/E100/billingperiods?X=1"
        );
        assert_eq!(norm("/rest/E100/Usage-Report"), "/rest/E100/usage-report");
        assert_eq!(norm("/portal/e/E100/reports"), "/portal/e/E100/reports");
        assert_eq!(norm("/portal"), "/portal");
    }
}
