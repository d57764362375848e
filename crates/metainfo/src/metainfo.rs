//! A whole `.torrent` file: the info dictionary plus what surrounds it (trackers by tier,
//! web seeds, DHT nodes, comment), and the info-hash over the info dictionary's exact bytes.

use std::collections::HashSet;

use bitswarm_bencode::{decode_with, Dict, Limits, Value};

use crate::error::{MetainfoError, Warning};
use crate::fields::Ctx;
use crate::info::{parse_info, Info};
use crate::info_hash::InfoHash;
use crate::magnet::{MagnetLink, MAGNET_LEN_MAX, MAGNET_PARAMS_MAX};

/// A parsed `.torrent` file (BEP 3 v1, with BEP 12 tiers, BEP 19 web seeds, BEP 27 private and
/// BEP 47 attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of `info_raw`.
    pub info_hash: InfoHash,
    /// The parsed info dictionary.
    pub info: Info,
    /// The info dictionary's bytes exactly as they appear in the file (what peers ask for
    /// through BEP 9, and what `info_hash` covers).
    pub info_raw: Vec<u8>,
    /// The `announce` URL, if any (empty strings count as absent).
    pub announce: Option<String>,
    /// BEP 12 tiers as given (not shuffled); empty URLs and empty tiers are left out.
    pub announce_list: Vec<Vec<String>>,
    /// BEP 19 `url-list` web seeds (a string or a list in the file).
    pub web_seeds: Vec<String>,
    /// BEP 5 `nodes`: DHT bootstrap nodes as (host, port).
    pub nodes: Vec<(String, u16)>,
    /// Free-form comment (`comment.utf-8` preferred).
    pub comment: Option<String>,
    /// The program that made the torrent.
    pub created_by: Option<String>,
    /// Creation time, seconds since the Unix epoch, as given.
    pub creation_date: Option<i64>,
    /// Non-fatal findings, in the order they were found.
    pub warnings: Vec<Warning>,
}

impl Metainfo {
    /// Parses a `.torrent` file, with [`Limits::DEFAULT`] bounds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        let root = decode_with(bytes, &Limits::DEFAULT)?;
        let dict = root.as_dict().ok_or(MetainfoError::WrongType {
            field: "(root)",
            expected: "a dictionary",
        })?;
        let info_value = dict
            .get(b"info")
            .ok_or(MetainfoError::MissingField { field: "info" })?;
        let mut ctx = Ctx::default();
        if dict.iter().filter(|(k, _)| *k == b"info").count() > 1 {
            ctx.ignored("info", "repeated; the first one is used");
        }
        let info = parse_info(info_value, &mut ctx)?;
        let info_raw = info_value.raw().to_vec();
        let announce = ctx
            .opt_text(dict, "announce", None)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        Ok(Self {
            info_hash: InfoHash::of_info(&info_raw),
            info,
            info_raw,
            announce,
            announce_list: announce_list(dict, &mut ctx),
            web_seeds: web_seeds(dict, &mut ctx),
            nodes: nodes(dict, &mut ctx),
            comment: ctx.opt_text(dict, "comment", Some("comment.utf-8")),
            created_by: ctx.opt_text(dict, "created by", None),
            creation_date: ctx.opt_int(dict, "creation date"),
            warnings: ctx.warnings,
        })
    }

    /// The tracker tiers to use: `announce-list` if it has any tracker (BEP 12 says
    /// `announce` is then ignored), else `[[announce]]`, else none.
    #[must_use]
    pub fn tracker_tiers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            return self.announce_list.clone();
        }
        self.announce.iter().map(|a| vec![a.clone()]).collect()
    }

    /// A magnet link for this torrent: info-hash, name, the trackers (tier order, without
    /// repeats) and the web seeds — as many of them as fit within [`MAGNET_LEN_MAX`] and
    /// [`MAGNET_PARAMS_MAX`], so that the link always parses back.
    #[must_use]
    pub fn magnet(&self) -> MagnetLink {
        let mut link = MagnetLink {
            info_hash: Some(self.info_hash),
            display_name: Some(self.info.name.clone()),
            ..MagnetLink::default()
        };
        let mut len = link.to_string().len();
        let mut params = 2;
        let mut fits = |key: &str, url: &str| {
            len += MagnetLink::emitted_param_len(key, url);
            params += 1;
            len <= MAGNET_LEN_MAX && params <= MAGNET_PARAMS_MAX
        };
        let mut seen = HashSet::new();
        for url in self.tracker_tiers().into_iter().flatten() {
            if seen.contains(&url) {
                continue;
            }
            if !fits("tr", &url) {
                return link;
            }
            seen.insert(url.clone());
            link.trackers.push(url);
        }
        for url in &self.web_seeds {
            if !fits("ws", url) {
                break;
            }
            link.web_seeds.push(url.clone());
        }
        link
    }
}

/// `announce-list`: a list of tiers, each a list of URLs. A flat list of strings (seen in the
/// wild) is read as one tier per URL, with a warning.
fn announce_list(dict: &Dict<'_>, ctx: &mut Ctx) -> Vec<Vec<String>> {
    let Some(value) = dict.get(b"announce-list") else {
        return Vec::new();
    };
    let Some(tiers) = value.as_list() else {
        ctx.ignored("announce-list", "not a list");
        return Vec::new();
    };
    let mut out = Vec::new();
    for tier in tiers {
        let urls: Vec<String> = match (tier.as_list(), tier.as_bytes()) {
            (Some(urls), _) => urls.iter().filter_map(|u| url(u, ctx)).collect(),
            (None, Some(_)) => {
                ctx.ignored(
                    "announce-list",
                    "a tier is a string, not a list; used as a tier",
                );
                url(tier, ctx).into_iter().collect()
            }
            (None, None) => {
                ctx.ignored("announce-list", "a tier is neither a list nor a string");
                Vec::new()
            }
        };
        if !urls.is_empty() {
            out.push(urls);
        }
    }
    out
}

/// BEP 19 `url-list`: one URL or a list of them.
fn web_seeds(dict: &Dict<'_>, ctx: &mut Ctx) -> Vec<String> {
    let Some(value) = dict.get(b"url-list") else {
        return Vec::new();
    };
    if value.as_bytes().is_some() {
        return url(value, ctx).into_iter().collect();
    }
    if let Some(urls) = value.as_list() {
        urls.iter().filter_map(|u| url(u, ctx)).collect()
    } else {
        ctx.ignored("url-list", "neither a string nor a list");
        Vec::new()
    }
}

/// One URL: a non-empty UTF-8 string (trimmed); anything else is skipped with a warning.
fn url(value: &Value<'_>, ctx: &mut Ctx) -> Option<String> {
    let Some(s) = value.as_str() else {
        ctx.ignored("tracker or web seed URL", "not a UTF-8 string");
        return None;
    };
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// BEP 5 `nodes`: a list of `[host, port]` pairs; malformed pairs are skipped.
fn nodes(dict: &Dict<'_>, ctx: &mut Ctx) -> Vec<(String, u16)> {
    let Some(value) = dict.get(b"nodes") else {
        return Vec::new();
    };
    let Some(list) = value.as_list() else {
        ctx.ignored("nodes", "not a list");
        return Vec::new();
    };
    let pair = |v: &Value<'_>| {
        let [host, port] = v.as_list()? else {
            return None;
        };
        let port = u16::try_from(port.as_int()?).ok()?;
        Some((host.as_str()?.to_owned(), port))
    };
    let nodes: Vec<_> = list.iter().filter_map(pair).collect();
    if nodes.len() != list.len() {
        ctx.ignored("nodes", "some entries are not [host, port] pairs");
    }
    nodes
}
