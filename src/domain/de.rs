//! How the input reads what integrators write in more than one way: one value or a list, a text
//! code sent as a number.

use serde::{Deserialize, Deserializer};

/// Accepts either one value or a list (integrators write `"CodImpAdic": 24` as often as `[24]`).
pub(crate) fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match Option::<OneOrMany<T>>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(v)) => vec![v],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// One object or a list of objects (`"Detalle": {…}` for a single line). Unlike
/// [`one_or_many`] it reads the objects in place, so an error inside one keeps its path
/// (`Detalle[0].QtyItem`).
pub(crate) fn one_or_many_objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object or a list of objects")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Vec<T>, A::Error> {
            let mut v = Vec::with_capacity(s.size_hint().unwrap_or(0).min(1000));
            while let Some(x) = s.next_element()? {
                v.push(x);
            }
            Ok(v)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Vec<T>, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(m)).map(|x| vec![x])
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// A text the schema types as a string that integrators also send as a number
/// (`"CdgIntRecep": 1234`, `"VlrCodigo": 7801234567890`): taken as its digits.
pub(crate) fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected a text or a number, found {other}"))),
    }
}

pub(crate) fn opt_text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!("expected a text or a number, found {other}"))),
    }
}
