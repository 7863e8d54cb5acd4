//! The fixed sample person (Myinfo v4 attribute shapes) and how a person answer is sealed: a
//! JWS signed by the emulator inside a JWE (ECDH-ES+A256KW, A256GCM) to the client's enc key.

use josekit::jwk::JwkSet;
use serde_json::{json, Map, Value};

use crate::errors::Rejection;
use crate::sealing::{seal_for_client, SealError};
use crate::signing::EmulatorKey;

/// Content encryption of the person JWE. Singpass does not document it; the proxy must accept
/// A256GCM and A256CBC-HS512, and this emulator sends the former.
pub(crate) const PERSON_CONTENT_ENCRYPTION: &str = "A256GCM";

const LAST_UPDATED: &str = "2024-03-25";

/// One sample attribute in Myinfo v4 shape, or `None` for an attribute the emulator does not
/// hold (such attributes are simply absent from the answer).
pub(crate) fn sample_attribute(name: &str) -> Option<Value> {
    let mut attribute = match name {
        "uinfin" => json!({"value": "S9812381D"}),
        "name" => json!({"value": "TAN XIAO HUI"}),
        "aliasname" => json!({"value": ""}),
        "sex" => json!({"code": "F", "desc": "FEMALE"}),
        "race" => json!({"code": "CN", "desc": "CHINESE"}),
        "nationality" => json!({"code": "SG", "desc": "SINGAPORE CITIZEN"}),
        "residentialstatus" => json!({"code": "C", "desc": "CITIZEN"}),
        "dob" => json!({"value": "1998-06-06"}),
        "birthcountry" => json!({"code": "SG", "desc": "SINGAPORE"}),
        "email" => json!({"value": "myinfotesting@gmail.com"}),
        "mobileno" => json!({
            "areacode": {"value": "65"},
            "prefix": {"value": "+"},
            "nbr": {"value": "97399245"}
        }),
        "regadd" => json!({
            "type": "SG",
            "country": {"code": "SG", "desc": "SINGAPORE"},
            "block": {"value": "102"},
            "building": {"value": "PEARL GARDEN"},
            "floor": {"value": "09"},
            "unit": {"value": "128"},
            "street": {"value": "BEDOK NORTH AVENUE 4"},
            "postal": {"value": "460102"}
        }),
        _ => return None,
    };
    // Government-verified (source 1) versus user-provided (source 4) data, as in Myinfo.
    let source = if matches!(name, "email" | "mobileno") {
        "4"
    } else {
        "1"
    };
    if let Value::Object(fields) = &mut attribute {
        fields.insert("lastupdated".into(), Value::from(LAST_UPDATED));
        fields.insert("source".into(), Value::from(source));
        fields.insert("classification".into(), Value::from("C"));
        fields.insert("unavailable".into(), Value::from(false));
    }
    Some(attribute)
}

/// The person JSON for `sub`: every requested attribute the sample holds, plus `sub`.
pub(crate) fn person_document(sub: &str, attributes: &[&str]) -> Value {
    let mut person = Map::new();
    for name in attributes {
        if let Some(attribute) = sample_attribute(name) {
            person.insert((*name).to_owned(), attribute);
        }
    }
    person.insert("sub".into(), Value::from(sub));
    Value::Object(person)
}

/// Signs the person document with the emulator's key, then encrypts that JWS to the client.
pub(crate) fn seal_person(
    key: &EmulatorKey,
    person: &Value,
    client_jwks: &JwkSet,
) -> Result<String, Rejection> {
    seal_for_client(key, person, client_jwks, PERSON_CONTENT_ENCRYPTION).map_err(|error| {
        match error {
            // The seed table's spelling.
            SealError::NoEncryptionKey => Rejection::bad_request("Invalid Encyption key"),
            SealError::Jose => Rejection::internal(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_holds_requested_known_attributes_and_sub() {
        let person = person_document("uuid-1", &["uinfin", "name", "not-an-attribute"]);
        assert_eq!(person["uinfin"]["value"], "S9812381D");
        assert_eq!(person["name"]["value"], "TAN XIAO HUI");
        assert_eq!(person["sub"], "uuid-1");
        assert!(person.get("not-an-attribute").is_none());
        assert!(person.get("email").is_none());
    }

    #[test]
    fn mobile_number_has_the_v4_parts() {
        let mobile = sample_attribute("mobileno").expect("sample has it");
        assert_eq!(mobile["nbr"]["value"], "97399245");
        assert_eq!(mobile["source"], "4");
    }
}
