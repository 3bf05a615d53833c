//! The `ivoa.obscore` table (IVOA ObsCore 1.1) every node serves over TAP.
//!
//! The database behind it is a view named [`SQL_VIEW`] with exactly these columns, plus
//! [`ROW_ID`] (the product's row id) and the unit vector [`SKY_X`], [`SKY_Y`], [`SKY_Z`] of its
//! position, which the cone test uses. [`SKY_INDEX`] is an R*Tree over the unit vectors, with
//! columns `id, x0, x1, y0, y1, z0, z1`.

/// The table's name in ADQL.
pub const TABLE_NAME: &str = "ivoa.obscore";
/// The schema the table belongs to.
pub const SCHEMA_NAME: &str = "ivoa";
/// The SQL view behind the table.
pub const SQL_VIEW: &str = "obscore";
/// The view's column holding the product's row id.
pub const ROW_ID: &str = "_id";
/// The view's columns holding the position as a unit vector.
pub const SKY_X: &str = "_cx";
/// See [`SKY_X`].
pub const SKY_Y: &str = "_cy";
/// See [`SKY_X`].
pub const SKY_Z: &str = "_cz";
/// The R*Tree over unit vectors: `id, x0, x1, y0, y1, z0, z1`, `id` being [`ROW_ID`].
pub const SKY_INDEX: &str = "sky_index";

/// A column's type, as VOTable and TAP_SCHEMA name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    /// Text (`char`, `arraysize="*"`; ADQL `VARCHAR`).
    Char,
    /// 32-bit integer (`int`; ADQL `INTEGER`).
    Int,
    /// 64-bit integer (`long`; ADQL `BIGINT`).
    Long,
    /// 64-bit float (`double`; ADQL `DOUBLE`).
    Double,
}

impl Datatype {
    /// The VOTable datatype.
    pub fn votable(self) -> &'static str {
        match self {
            Datatype::Char => "char",
            Datatype::Int => "int",
            Datatype::Long => "long",
            Datatype::Double => "double",
        }
    }

    /// The ADQL (TAP_SCHEMA) datatype.
    pub fn adql(self) -> &'static str {
        match self {
            Datatype::Char => "VARCHAR",
            Datatype::Int => "INTEGER",
            Datatype::Long => "BIGINT",
            Datatype::Double => "DOUBLE",
        }
    }

    /// Whether values are numbers.
    pub fn is_numeric(self) -> bool {
        !matches!(self, Datatype::Char)
    }
}

/// One column of `ivoa.obscore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name (lower case).
    pub name: &'static str,
    /// Its type.
    pub datatype: Datatype,
    /// Its unit, if any.
    pub unit: Option<&'static str>,
    /// Its UCD.
    pub ucd: &'static str,
    /// Its ObsCore utype.
    pub utype: &'static str,
    /// What it holds.
    pub description: &'static str,
    /// Whether it is shown by default (TAP_SCHEMA `principal`).
    pub principal: bool,
    /// Whether the database indexes it (TAP_SCHEMA `indexed`).
    pub indexed: bool,
}

/// The columns, in ObsCore order.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "dataproduct_type",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.code.class",
        utype: "obscore:ObsDataset.dataProductType",
        description: "Data product type: image, cube, spectrum, sed, timeseries, visibility, event or measurements",
        principal: true,
        indexed: true,
    },
    Column {
        name: "calib_level",
        datatype: Datatype::Int,
        unit: None,
        ucd: "meta.code;obs.calib",
        utype: "obscore:ObsDataset.calibLevel",
        description: "Calibration level: 0 raw, 1 instrumental, 2 calibrated, 3 enhanced, 4 analysis",
        principal: true,
        indexed: false,
    },
    Column {
        name: "obs_collection",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.id",
        utype: "obscore:DataID.Collection",
        description: "Name of the data collection (the mission or survey)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "obs_id",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.id",
        utype: "obscore:DataID.observationID",
        description: "Observation identifier",
        principal: true,
        indexed: true,
    },
    Column {
        name: "obs_title",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.title;obs",
        utype: "obscore:DataID.Title",
        description: "Title of the product",
        principal: true,
        indexed: false,
    },
    Column {
        name: "obs_publisher_did",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.ref.ivoid",
        utype: "obscore:Curation.PublisherDID",
        description: "Publisher's identifier of the product",
        principal: true,
        indexed: true,
    },
    Column {
        name: "obs_publisher",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.curation",
        utype: "obscore:Curation.Publisher",
        description: "Publisher of the product",
        principal: false,
        indexed: false,
    },
    Column {
        name: "access_url",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.ref.url",
        utype: "obscore:Access.Reference",
        description: "Where the product can be fetched",
        principal: true,
        indexed: false,
    },
    Column {
        name: "access_format",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.code.mime",
        utype: "obscore:Access.Format",
        description: "MIME type of the product",
        principal: true,
        indexed: false,
    },
    Column {
        name: "access_estsize",
        datatype: Datatype::Long,
        unit: Some("kbyte"),
        ucd: "phys.size;meta.file",
        utype: "obscore:Access.Size",
        description: "Size of the product",
        principal: true,
        indexed: false,
    },
    Column {
        name: "target_name",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.id;src",
        utype: "obscore:Target.Name",
        description: "Name of the observed target",
        principal: true,
        indexed: true,
    },
    Column {
        name: "s_ra",
        datatype: Datatype::Double,
        unit: Some("deg"),
        ucd: "pos.eq.ra",
        utype: "obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
        description: "Right ascension of the centre (ICRS)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "s_dec",
        datatype: Datatype::Double,
        unit: Some("deg"),
        ucd: "pos.eq.dec",
        utype: "obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
        description: "Declination of the centre (ICRS)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "s_fov",
        datatype: Datatype::Double,
        unit: Some("deg"),
        ucd: "phys.angSize;instr.fov",
        utype: "obscore:Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
        description: "Diameter of the covered region",
        principal: true,
        indexed: false,
    },
    Column {
        name: "s_region",
        datatype: Datatype::Char,
        unit: None,
        ucd: "pos.outline;obs.field",
        utype: "obscore:Char.SpatialAxis.Coverage.Support.Area",
        description: "Region covered, as an STC-S string",
        principal: false,
        indexed: false,
    },
    Column {
        name: "s_resolution",
        datatype: Datatype::Double,
        unit: Some("arcsec"),
        ucd: "pos.angResolution",
        utype: "obscore:Char.SpatialAxis.Resolution.Refval.value",
        description: "Spatial resolution",
        principal: false,
        indexed: false,
    },
    Column {
        name: "s_xel1",
        datatype: Datatype::Long,
        unit: None,
        ucd: "meta.number",
        utype: "obscore:Char.SpatialAxis.numBins1",
        description: "Pixels along the first spatial axis",
        principal: false,
        indexed: false,
    },
    Column {
        name: "s_xel2",
        datatype: Datatype::Long,
        unit: None,
        ucd: "meta.number",
        utype: "obscore:Char.SpatialAxis.numBins2",
        description: "Pixels along the second spatial axis",
        principal: false,
        indexed: false,
    },
    Column {
        name: "t_min",
        datatype: Datatype::Double,
        unit: Some("d"),
        ucd: "time.start;obs.exposure",
        utype: "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
        description: "Start of the observation (MJD)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "t_max",
        datatype: Datatype::Double,
        unit: Some("d"),
        ucd: "time.end;obs.exposure",
        utype: "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
        description: "End of the observation (MJD)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "t_exptime",
        datatype: Datatype::Double,
        unit: Some("s"),
        ucd: "time.duration;obs.exposure",
        utype: "obscore:Char.TimeAxis.Coverage.Support.Extent",
        description: "Exposure time",
        principal: true,
        indexed: false,
    },
    Column {
        name: "t_resolution",
        datatype: Datatype::Double,
        unit: Some("s"),
        ucd: "time.resolution",
        utype: "obscore:Char.TimeAxis.Resolution.Refval.value",
        description: "Temporal resolution",
        principal: false,
        indexed: false,
    },
    Column {
        name: "t_xel",
        datatype: Datatype::Long,
        unit: None,
        ucd: "meta.number",
        utype: "obscore:Char.TimeAxis.numBins",
        description: "Samples along the time axis",
        principal: false,
        indexed: false,
    },
    Column {
        name: "em_min",
        datatype: Datatype::Double,
        unit: Some("m"),
        ucd: "em.wl;stat.min",
        utype: "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
        description: "Shortest wavelength covered",
        principal: true,
        indexed: false,
    },
    Column {
        name: "em_max",
        datatype: Datatype::Double,
        unit: Some("m"),
        ucd: "em.wl;stat.max",
        utype: "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
        description: "Longest wavelength covered",
        principal: true,
        indexed: false,
    },
    Column {
        name: "em_res_power",
        datatype: Datatype::Double,
        unit: None,
        ucd: "spect.resolution",
        utype: "obscore:Char.SpectralAxis.Resolution.ResolPower.refVal",
        description: "Spectral resolving power",
        principal: false,
        indexed: false,
    },
    Column {
        name: "em_xel",
        datatype: Datatype::Long,
        unit: None,
        ucd: "meta.number",
        utype: "obscore:Char.SpectralAxis.numBins",
        description: "Samples along the spectral axis",
        principal: false,
        indexed: false,
    },
    Column {
        name: "o_ucd",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.ucd",
        utype: "obscore:Char.ObservableAxis.ucd",
        description: "UCD of the observable (the pixel values)",
        principal: false,
        indexed: false,
    },
    Column {
        name: "pol_states",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.code;phys.polarization",
        utype: "obscore:Char.PolarizationAxis.stateList",
        description: "Polarisation states",
        principal: false,
        indexed: false,
    },
    Column {
        name: "pol_xel",
        datatype: Datatype::Long,
        unit: None,
        ucd: "meta.number",
        utype: "obscore:Char.PolarizationAxis.numBins",
        description: "Polarisation samples",
        principal: false,
        indexed: false,
    },
    Column {
        name: "facility_name",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.id;instr.tel",
        utype: "obscore:Provenance.ObsConfig.Facility.name",
        description: "Telescope or observatory",
        principal: true,
        indexed: true,
    },
    Column {
        name: "instrument_name",
        datatype: Datatype::Char,
        unit: None,
        ucd: "meta.id;instr",
        utype: "obscore:Provenance.ObsConfig.Instrument.name",
        description: "Instrument",
        principal: true,
        indexed: true,
    },
];

/// The column of that name (ADQL identifiers are case-insensitive unless quoted; quoted names
/// are matched exactly by the caller).
pub fn column(name: &str) -> Option<&'static Column> {
    COLUMNS.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lower_case_and_found() {
        for (i, c) in COLUMNS.iter().enumerate() {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(
                COLUMNS[i + 1..].iter().all(|d| d.name != c.name),
                "{}",
                c.name
            );
            assert_eq!(column(&c.name.to_ascii_uppercase()), Some(c));
        }
        assert_eq!(column("password"), None);
    }

    #[test]
    fn ucds_follow_obscore() {
        // ObsCore 1.1 table 5: the product type is a class code, not an identifier.
        let ucd = |name: &str| column(name).map(|c| c.ucd);
        assert_eq!(ucd("dataproduct_type"), Some("meta.code.class"));
        assert_eq!(ucd("calib_level"), Some("meta.code;obs.calib"));
        assert_eq!(ucd("obs_id"), Some("meta.id"));
    }
}
