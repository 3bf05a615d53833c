//! What the catalog records of one product, and where it comes from: a FITS header, a sidecar
//! file, or the options of `orrery dataset add`.

use std::path::Path;

use fitsrs::card::Value;
use serde::{Deserialize, Serialize};

/// The metadata of one product. Every field is optional until the product is stored; the
/// most specific source wins (sidecar over header over collection defaults).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductMeta {
    /// A title.
    pub title: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// Observation id.
    pub obs_id: Option<String>,
    /// Mission or survey.
    pub mission: Option<String>,
    /// Telescope or observatory.
    pub facility: Option<String>,
    /// Instrument.
    pub instrument: Option<String>,
    /// ObsCore product type.
    pub product_type: Option<String>,
    /// ObsCore calibration level (0-4).
    pub calib_level: Option<i64>,
    /// Spectral band.
    pub band: Option<String>,
    /// Licence.
    pub licence: Option<String>,
    /// Publisher.
    pub publisher: Option<String>,
    /// Target name.
    pub target: Option<String>,
    /// Right ascension, degrees.
    pub ra: Option<f64>,
    /// Declination, degrees.
    pub dec: Option<f64>,
    /// Field of view (diameter), degrees.
    pub fov: Option<f64>,
    /// Observation start as an ISO 8601 date (sidecars) ...
    pub date_obs: Option<String>,
    /// ... or as MJD.
    pub t_min: Option<f64>,
    /// Observation end, MJD.
    pub t_max: Option<f64>,
    /// Exposure time, seconds.
    pub exptime: Option<f64>,
    /// Shortest wavelength, metres.
    pub em_min: Option<f64>,
    /// Longest wavelength, metres.
    pub em_max: Option<f64>,
    /// Image axes.
    pub naxis: Option<Vec<u64>>,
    /// Pixel unit.
    pub bunit: Option<String>,
    /// MIME type.
    pub format: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Header values as text, for the full-text index (not read from sidecars).
    #[serde(skip)]
    pub header_text: String,
}

impl ProductMeta {
    /// Fills every field `self` lacks from `other`.
    pub fn or(mut self, other: &ProductMeta) -> ProductMeta {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = other.$f.clone(); } )* };
        }
        fill!(
            title,
            description,
            obs_id,
            mission,
            facility,
            instrument,
            product_type,
            calib_level,
            band,
            licence,
            publisher,
            target,
            ra,
            dec,
            fov,
            date_obs,
            t_min,
            t_max,
            exptime,
            em_min,
            em_max,
            naxis,
            bunit,
            format,
            tags
        );
        if self.header_text.is_empty() {
            self.header_text = other.header_text.clone();
        }
        self
    }

    /// Reads a sidecar file (`NAME.meta.json` or `NAME.meta.toml`).
    pub fn from_sidecar(path: &Path, text: &str) -> Result<ProductMeta, String> {
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        let meta: ProductMeta = if is_toml {
            toml::from_str(text).map_err(|e| e.to_string())?
        } else {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        };
        Ok(meta)
    }

    /// Resolves derived fields: the time range from `date_obs` and the exposure, the band from
    /// the wavelengths or the wavelengths from the band, and checks ranges. Errors name the
    /// field. A product whose header, sidecar and options give no calibration level gets
    /// [`DEFAULT_CALIB_LEVEL`], since ObsCore makes `calib_level` mandatory.
    pub fn finish(mut self) -> Result<ProductMeta, String> {
        if self.t_min.is_none()
            && let Some(date) = &self.date_obs
        {
            self.t_min = Some(
                iso_to_mjd(date)
                    .ok_or_else(|| format!("date_obs `{date}` is not an ISO 8601 date"))?,
            );
        }
        if self.t_max.is_none()
            && let (Some(t), Some(e)) = (self.t_min, self.exptime)
        {
            self.t_max = Some(t + e / 86_400.0);
        }
        if self.t_max.is_none() {
            self.t_max = self.t_min;
        }
        match (self.ra, self.dec) {
            (Some(ra), Some(dec)) => {
                orrery_catalog::sky::check_position(ra, dec).map_err(|e| e.to_string())?;
                self.ra = Some(orrery_catalog::sky::normalise_ra(ra));
            }
            (None, None) => {}
            _ => return Err("a position needs both ra and dec".into()),
        }
        for (name, v) in [
            ("t_min", self.t_min),
            ("t_max", self.t_max),
            ("exptime", self.exptime),
            ("fov", self.fov),
            ("em_min", self.em_min),
            ("em_max", self.em_max),
        ] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(format!("{name} is not a finite number"));
            }
        }
        if let Some(level) = self.calib_level
            && !(0..=4).contains(&level)
        {
            return Err(format!("calib_level {level} is outside 0-4"));
        }
        self.calib_level.get_or_insert(DEFAULT_CALIB_LEVEL);
        if self.band.is_none() {
            self.band = self
                .em_min
                .zip(self.em_max)
                .map(|(lo, hi)| band_of((lo * hi).sqrt()).to_owned());
        } else if self.em_min.is_none()
            && let Some((lo, hi)) = self.band.as_deref().and_then(band_range)
        {
            self.em_min = Some(lo);
            self.em_max = Some(hi);
        }
        if let Some(band) = &self.band {
            self.band = Some(band.to_ascii_lowercase());
        }
        if let Some(t) = &self.product_type {
            self.product_type = Some(t.to_ascii_lowercase());
        }
        Ok(self)
    }
}

/// The calibration level of a product nothing else describes: ObsCore level 1, "instrumental
/// data in a standard format" — what a FITS file from an instrument with no processing
/// keywords is taken to be. A sidecar's or `orrery dataset add`'s `calib_level` overrides it.
pub const DEFAULT_CALIB_LEVEL: i64 = 1;

/// The spectral bands, with the wavelengths (metres) that bound them.
const BANDS: &[(&str, f64, f64)] = &[
    ("gamma-ray", 0.0, 1e-11),
    ("x-ray", 1e-11, 1e-8),
    ("euv", 1e-8, 1e-7),
    ("uv", 1e-7, 3.2e-7),
    ("optical", 3.2e-7, 1e-6),
    ("infrared", 1e-6, 1e-3),
    ("millimeter", 1e-3, 1e-2),
    ("radio", 1e-2, 1e3),
];

fn band_of(wavelength: f64) -> &'static str {
    BANDS
        .iter()
        .find(|(_, lo, hi)| wavelength >= *lo && wavelength < *hi)
        .map_or("radio", |b| b.0)
}

fn band_range(band: &str) -> Option<(f64, f64)> {
    BANDS
        .iter()
        .find(|(name, ..)| name.eq_ignore_ascii_case(band))
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// The names of the spectral bands.
pub fn band_names() -> impl Iterator<Item = &'static str> {
    BANDS.iter().map(|b| b.0)
}

/// An ISO 8601 date or date-time (`YYYY-MM-DD[Thh:mm[:ss[.fff]]][Z]`, as FITS `DATE-OBS` writes
/// it) as a Modified Julian Date.
pub fn iso_to_mjd(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || !(0..=9999).contains(&y)
    {
        return None;
    }
    let mut seconds = 0.0;
    if let Some(t) = time {
        let mut it = t.split(':');
        let h: f64 = it.next()?.parse().ok()?;
        let min: f64 = it.next().map_or(Some(0.0), |v| v.parse().ok())?;
        let sec: f64 = it.next().map_or(Some(0.0), |v| v.parse().ok())?;
        if it.next().is_some()
            || !(0.0..24.0).contains(&h)
            || !(0.0..60.0).contains(&min)
            || !(0.0..61.0).contains(&sec)
        {
            return None;
        }
        seconds = h * 3600.0 + min * 60.0 + sec;
    }
    // Days from the civil date (proleptic Gregorian), then MJD 0 = 1858-11-17.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days_since_1970 = era * 146_097 + doe - 719_468;
    Some((days_since_1970 + 40_587) as f64 + seconds / 86_400.0)
}

/// A MJD as an ISO 8601 date-time (UTC, seconds).
pub fn mjd_to_iso(mjd: f64) -> String {
    let secs = ((mjd - 40_587.0) * 86_400.0).round() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// What the headers of a FITS file say.
pub fn from_fits_header(
    cards: &[(String, Value)],
    extnames: &[String],
    naxis: &[u64],
) -> ProductMeta {
    let get = |key: &str| cards.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let text = |key: &str| match get(key) {
        Some(Value::String { value, .. }) if !value.trim().is_empty() => {
            Some(value.trim().to_owned())
        }
        _ => None,
    };
    let number = |key: &str| match get(key) {
        Some(Value::Float { value, .. }) => Some(*value),
        Some(Value::Integer { value, .. }) => Some(*value as f64),
        Some(Value::String { value, .. }) => value.trim().parse().ok(),
        _ => None,
    };
    let mut meta = ProductMeta {
        facility: text("TELESCOP"),
        instrument: text("INSTRUME"),
        target: text("OBJECT"),
        obs_id: text("OBS_ID").or_else(|| text("OBSID")),
        date_obs: text("DATE-OBS"),
        t_min: number("MJD-OBS"),
        exptime: number("EXPTIME")
            .or_else(|| number("EXPOSURE"))
            .or_else(|| number("TELAPSE")),
        bunit: text("BUNIT"),
        title: text("TITLE"),
        ..ProductMeta::default()
    };
    if let Some(end) = text("DATE-END") {
        meta.t_max = iso_to_mjd(&end);
    }
    // The position: the pointing keywords first, then the reference pixel of an equatorial WCS.
    let pointing = [
        ("RA_OBJ", "DEC_OBJ"),
        ("RA_TARG", "DEC_TARG"),
        ("RA", "DEC"),
        ("RA_NOM", "DEC_NOM"),
    ];
    let wcs = text("CTYPE1").is_some_and(|c| c.starts_with("RA"))
        && text("CTYPE2").is_some_and(|c| c.starts_with("DEC"));
    let position = pointing
        .iter()
        .find_map(|(r, d)| number(r).zip(number(d)))
        .or_else(|| {
            if wcs {
                number("CRVAL1").zip(number("CRVAL2"))
            } else {
                None
            }
        });
    if let Some((ra, dec)) = position
        && orrery_catalog::sky::check_position(ra, dec).is_ok()
    {
        meta.ra = Some(ra);
        meta.dec = Some(dec);
    }
    if wcs
        && let (Some(c1), Some(c2)) = (number("CDELT1"), number("CDELT2"))
        && naxis.len() >= 2
    {
        let w = (c1 * naxis[0] as f64).abs();
        let h = (c2 * naxis[1] as f64).abs();
        let fov = w.hypot(h);
        if fov.is_finite() && fov > 0.0 && fov <= 180.0 {
            meta.fov = Some(fov);
        }
    }
    if let (Some(lo), Some(hi)) = (number("WAVELMIN"), number("WAVELMAX")) {
        // ESO's convention: nanometres.
        meta.em_min = Some(lo * 1e-9);
        meta.em_max = Some(hi * 1e-9);
    }
    let has_ext = |name: &str| extnames.iter().any(|e| e.eq_ignore_ascii_case(name));
    meta.product_type = Some(
        if has_ext("EVENTS") {
            "event"
        } else if has_ext("SPECTRUM") {
            "spectrum"
        } else if has_ext("RATE") || has_ext("LIGHTCURVE") {
            "timeseries"
        } else {
            match naxis.iter().filter(|n| **n > 1).count() {
                0 if !extnames.is_empty() => "measurements",
                0 | 1 => "spectrum",
                2 => "image",
                _ => "cube",
            }
        }
        .to_owned(),
    );
    if !naxis.is_empty() {
        meta.naxis = Some(naxis.to_vec());
    }
    meta.format = Some("application/fits".into());
    // Every value, for the full-text index.
    let mut header = String::new();
    for (key, value) in cards {
        let v = match value {
            Value::String { value, .. } => value.trim().to_owned(),
            Value::Float { value, .. } => value.to_string(),
            Value::Integer { value, .. } => value.to_string(),
            Value::Logical { value, .. } => value.to_string(),
            _ => continue,
        };
        if header.len() + key.len() + v.len() + 2 > 64 * 1024 {
            break;
        }
        header.push_str(key);
        header.push(' ');
        header.push_str(&v);
        header.push('\n');
    }
    meta.header_text = header;
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_both_ways() {
        assert_eq!(iso_to_mjd("1858-11-17"), Some(0.0));
        assert_eq!(iso_to_mjd("2000-01-01T12:00:00"), Some(51_544.5));
        assert_eq!(iso_to_mjd("2024-02-29T06:00:00.000Z"), Some(60_369.25));
        assert_eq!(mjd_to_iso(60_369.25), "2024-02-29T06:00:00");
        for bad in [
            "",
            "2024",
            "2024-13-01",
            "2024-01-01T25:00",
            "x-y-z",
            "2024-01-01T01:02:03:04",
        ] {
            assert_eq!(iso_to_mjd(bad), None, "{bad}");
        }
    }

    #[test]
    fn bands_follow_wavelengths() {
        let meta = ProductMeta {
            em_min: Some(5e-7),
            em_max: Some(6e-7),
            ..Default::default()
        };
        assert_eq!(
            meta.finish().expect("valid").band.as_deref(),
            Some("optical")
        );
        let meta = ProductMeta {
            band: Some("X-Ray".into()),
            ..Default::default()
        };
        let meta = meta.finish().expect("valid");
        assert_eq!(meta.band.as_deref(), Some("x-ray"));
        assert_eq!(meta.em_min, Some(1e-11));
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn bad_metadata_is_named() {
        let meta = ProductMeta {
            ra: Some(10.0),
            ..Default::default()
        };
        assert!(meta.finish().unwrap_err().contains("both ra and dec"));
        let meta = ProductMeta {
            ra: Some(10.0),
            dec: Some(95.0),
            ..Default::default()
        };
        assert!(meta.finish().unwrap_err().contains("declination"));
        let meta = ProductMeta {
            calib_level: Some(9),
            ..Default::default()
        };
        assert!(meta.finish().unwrap_err().contains("calib_level"));
    }

    #[test]
    fn calib_level_is_never_empty() {
        let meta = ProductMeta::default().finish();
        assert_eq!(
            meta.ok().and_then(|m| m.calib_level),
            Some(DEFAULT_CALIB_LEVEL)
        );
        let meta = ProductMeta {
            calib_level: Some(3),
            ..Default::default()
        };
        assert_eq!(meta.finish().ok().and_then(|m| m.calib_level), Some(3));
    }
}
