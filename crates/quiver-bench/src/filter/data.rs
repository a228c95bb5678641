//! The generated metadata of `bench filter` and its filters, in each system's language.
//!
//! Row `i` carries four fields drawn from a hash of `i` (independent of its vector, so a
//! filter's allowed rows are scattered over the clusters and over the segments):
//!
//! | field   | values                                  |
//! |---------|-----------------------------------------|
//! | `tag`   | keyword, 100 values `t00`..`t99`        |
//! | `n`     | integer, uniform in `0..N`              |
//! | `price` | float, uniform in `[0, 100)`, 2 decimals |
//! | `flag`  | bool                                    |
//!
//! The filters, named by the share of rows they allow: `0.1%` (`tag` and `n` below N/10),
//! `1%` (one `tag`), `10%` (`price` in `[20, 30)`), `50%` (`flag`).

use serde::Serialize;
use serde_json::{json, Value};

/// One row's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Meta {
    pub tag: u8,
    pub n: u64,
    pub price: f64,
    pub flag: bool,
}

/// splitmix64: a well-mixed hash of a row number.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Meta {
    /// The metadata of row `i` of `n` rows.
    pub fn of(i: usize, n: usize) -> Meta {
        let h = |salt: u64| mix((i as u64) ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d));
        Meta {
            tag: (h(1) % 100) as u8,
            n: h(2) % (n.max(1) as u64),
            price: (h(3) % 10_000) as f64 / 100.0,
            flag: h(4) % 2 == 0,
        }
    }

    /// The document metadata Quiver stores.
    pub fn json(&self) -> Value {
        json!({"tag": tag_name(self.tag), "n": self.n, "price": self.price, "flag": self.flag})
    }
}

fn tag_name(tag: u8) -> String {
    format!("t{tag:02}")
}

/// The tag every keyword filter asks for.
const TAG: u8 = 7;

/// One benchmarked filter, in Quiver's, Chroma's and LanceDB's terms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterCase {
    /// The share of rows it is meant to allow, as a label (`1%`).
    pub name: String,
    pub quiver: Value,
    pub chroma: Value,
    /// A LanceDB `where` clause (SQL).
    pub lancedb: String,
    #[serde(skip)]
    test: Test,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Test {
    TagAndN(u64),
    Tag,
    Price,
    Flag,
}

impl FilterCase {
    /// Whether row metadata `m` passes.
    pub fn allows(&self, m: &Meta) -> bool {
        match self.test {
            Test::TagAndN(below) => m.tag == TAG && m.n < below,
            Test::Tag => m.tag == TAG,
            Test::Price => (20.0..30.0).contains(&m.price),
            Test::Flag => m.flag,
        }
    }
}

/// The four filters over `n` rows, most selective first.
pub fn cases(n: usize) -> Vec<FilterCase> {
    let tag = tag_name(TAG);
    let below = (n / 10) as u64;
    vec![
        FilterCase {
            name: "0.1%".into(),
            quiver: json!({"must": [{"key": "tag", "match": tag},
                {"key": "n", "range": {"lt": below}}]}),
            chroma: json!({"$and": [{"tag": {"$eq": tag}}, {"n": {"$lt": below}}]}),
            lancedb: format!("tag = '{tag}' AND n < {below}"),
            test: Test::TagAndN(below),
        },
        FilterCase {
            name: "1%".into(),
            quiver: json!({"must": [{"key": "tag", "match": tag}]}),
            chroma: json!({"tag": {"$eq": tag}}),
            lancedb: format!("tag = '{tag}'"),
            test: Test::Tag,
        },
        FilterCase {
            name: "10%".into(),
            quiver: json!({"must": [{"key": "price", "range": {"gte": 20.0, "lt": 30.0}}]}),
            chroma: json!({"$and": [{"price": {"$gte": 20.0}}, {"price": {"$lt": 30.0}}]}),
            lancedb: "price >= 20.0 AND price < 30.0".into(),
            test: Test::Price,
        },
        FilterCase {
            name: "50%".into(),
            quiver: json!({"must": [{"key": "flag", "match": true}]}),
            chroma: json!({"flag": {"$eq": true}}),
            lancedb: "flag = true".into(),
            test: Test::Flag,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectivities_come_out_near_their_names() {
        let n = 200_000;
        let metas: Vec<Meta> = (0..n).map(|i| Meta::of(i, n)).collect();
        for (case, want) in cases(n).iter().zip([0.001, 0.01, 0.1, 0.5]) {
            let share = metas.iter().filter(|m| case.allows(m)).count() as f64 / n as f64;
            assert!((share / want - 1.0).abs() < 0.25, "{}: {share}", case.name);
        }
        assert_eq!(Meta::of(5, n), Meta::of(5, n));
        assert_eq!(Meta::of(5, n).json()["tag"].as_str().unwrap().len(), 3);
    }
}
