//! Building the metainfo dictionary (BEP 3, 12, 19, 27) from the scanned files and hashes.

use bitswarm_bencode::OwnedValue;
use sha1::{Digest, Sha1};

use crate::{CreateError, CreateOptions, FileToHash};

/// What goes into the `info` dictionary besides the options.
pub(crate) struct InfoParts<'a> {
    pub name: &'a str,
    pub files: &'a [FileToHash],
    /// True when the root was a file: `length` instead of `files`.
    pub single_file: bool,
    pub piece_length: u32,
    pub pieces: &'a [[u8; 20]],
}

/// The canonical encoding of the whole torrent and the info-hash (SHA-1 of the encoded
/// `info` dictionary).
pub(crate) fn encode(
    parts: &InfoParts<'_>,
    opts: &CreateOptions,
) -> Result<(Vec<u8>, [u8; 20]), CreateError> {
    let info = info_dict(parts, opts)?;
    let info_hash: [u8; 20] = Sha1::digest(info.encode()).into();
    let mut root = OwnedValue::dict().insert("info", info);
    let mut trackers = opts.trackers.iter().flatten();
    if let Some(first) = trackers.next() {
        root = root.insert("announce", first.as_str().into());
        if trackers.next().is_some() {
            let tiers = opts
                .trackers
                .iter()
                .filter(|tier| !tier.is_empty())
                .map(|tier| OwnedValue::List(tier.iter().map(|t| t.as_str().into()).collect()))
                .collect();
            root = root.insert("announce-list", OwnedValue::List(tiers));
        }
    }
    if !opts.web_seeds.is_empty() {
        let urls = opts.web_seeds.iter().map(|u| u.as_str().into()).collect();
        root = root.insert("url-list", OwnedValue::List(urls));
    }
    if let Some(comment) = &opts.comment {
        root = root.insert("comment", comment.as_str().into());
    }
    if let Some(created_by) = &opts.created_by {
        root = root.insert("created by", created_by.as_str().into());
    }
    if let Some(date) = opts.creation_date {
        root = root.insert("creation date", OwnedValue::Int(date));
    }
    Ok((root.encode(), info_hash))
}

fn info_dict(parts: &InfoParts<'_>, opts: &CreateOptions) -> Result<OwnedValue, CreateError> {
    let total: u64 = parts.files.iter().map(|f| f.length).sum();
    let too_large = || CreateError::TooLarge {
        total_length: total,
        piece_length: parts.piece_length,
    };
    let mut info = OwnedValue::dict()
        .insert("name", parts.name.into())
        .insert(
            "piece length",
            OwnedValue::Int(i64::from(parts.piece_length)),
        )
        .insert("pieces", OwnedValue::Bytes(parts.pieces.concat()));
    if parts.single_file {
        let length = i64::try_from(total).map_err(|_| too_large())?;
        info = info.insert("length", OwnedValue::Int(length));
    } else {
        let mut files = Vec::with_capacity(parts.files.len());
        for file in parts.files {
            let length = i64::try_from(file.length).map_err(|_| too_large())?;
            let path = file
                .torrent_path
                .iter()
                .map(|c| c.as_str().into())
                .collect();
            files.push(
                OwnedValue::dict()
                    .insert("length", OwnedValue::Int(length))
                    .insert("path", OwnedValue::List(path)),
            );
        }
        info = info.insert("files", OwnedValue::List(files));
    }
    if opts.private {
        info = info.insert("private", OwnedValue::Int(1));
    }
    if let Some(source) = &opts.source {
        info = info.insert("source", source.as_str().into());
    }
    Ok(info)
}
