//! Positions on the sky as unit vectors.
//!
//! A cone test on (RA, Dec) pairs goes wrong at RA = 0/360 and near the poles; on unit vectors it
//! is one dot product. A cone is bounded by an axis-aligned box in (x, y, z), which an R*Tree
//! index answers; the exact test then runs on the few candidates inside the box.

use serde::{Deserialize, Serialize};

/// A direction on the sky (ICRS), as a unit vector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UnitVector {
    /// Towards RA = 0, Dec = 0.
    pub x: f64,
    /// Towards RA = 90°, Dec = 0.
    pub y: f64,
    /// Towards the north celestial pole.
    pub z: f64,
}

impl UnitVector {
    /// The direction of (RA, Dec) in degrees. RA is taken modulo 360; Dec must lie in
    /// [-90, 90] (see [`check_position`]).
    pub fn from_radec(ra_deg: f64, dec_deg: f64) -> Self {
        let (ra, dec) = (ra_deg.to_radians(), dec_deg.to_radians());
        Self {
            x: dec.cos() * ra.cos(),
            y: dec.cos() * ra.sin(),
            z: dec.sin(),
        }
    }

    /// The dot product, the cosine of the angle between two directions.
    pub fn dot(&self, other: &Self) -> f64 {
        self.x * other.x + self.y * other.y + self.z * other.z
    }

    /// The angle to another direction, in degrees.
    pub fn separation_deg(&self, other: &Self) -> f64 {
        // atan2 of cross and dot stays accurate for tiny and for near-antipodal angles.
        let cross = (
            self.y * other.z - self.z * other.y,
            self.z * other.x - self.x * other.z,
            self.x * other.y - self.y * other.x,
        );
        let sin = (cross.0 * cross.0 + cross.1 * cross.1 + cross.2 * cross.2).sqrt();
        sin.atan2(self.dot(other)).to_degrees()
    }
}

/// Why a position or a cone is not on the sky.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkyError {
    /// RA is not a finite number.
    #[error("right ascension {0} is not a finite number of degrees")]
    Ra(f64),
    /// Dec outside [-90, 90].
    #[error("declination {0} is outside [-90, 90] degrees")]
    Dec(f64),
    /// Radius outside (0, 180].
    #[error("radius {0} is outside (0, 180] degrees")]
    Radius(f64),
}

/// Checks that (RA, Dec) in degrees is a position on the sky. Any finite RA is accepted and read
/// modulo 360.
pub fn check_position(ra_deg: f64, dec_deg: f64) -> Result<(), SkyError> {
    if !ra_deg.is_finite() {
        return Err(SkyError::Ra(ra_deg));
    }
    if !dec_deg.is_finite() || !(-90.0..=90.0).contains(&dec_deg) {
        return Err(SkyError::Dec(dec_deg));
    }
    Ok(())
}

/// RA folded into [0, 360).
pub fn normalise_ra(ra_deg: f64) -> f64 {
    let ra = ra_deg.rem_euclid(360.0);
    // rem_euclid can return 360.0 itself for tiny negative inputs.
    if ra >= 360.0 { 0.0 } else { ra }
}

/// An axis-aligned box in (x, y, z) that holds every direction of a cone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Box3 {
    /// Lower and upper bound of x.
    pub x: (f64, f64),
    /// Lower and upper bound of y.
    pub y: (f64, f64),
    /// Lower and upper bound of z.
    pub z: (f64, f64),
}

/// A cone on the sky: every direction within `radius_deg` of a centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkyCone {
    /// The centre.
    pub centre: UnitVector,
    /// The radius in degrees, in (0, 180].
    pub radius_deg: f64,
}

impl SkyCone {
    /// A checked cone.
    pub fn new(ra_deg: f64, dec_deg: f64, radius_deg: f64) -> Result<Self, SkyError> {
        check_position(ra_deg, dec_deg)?;
        if !radius_deg.is_finite() || radius_deg <= 0.0 || radius_deg > 180.0 {
            return Err(SkyError::Radius(radius_deg));
        }
        Ok(Self {
            centre: UnitVector::from_radec(ra_deg, dec_deg),
            radius_deg,
        })
    }

    /// The least cosine of the angle to the centre that a direction inside has. Padded by a
    /// few ulps so a point on the rim is inside however the dot product rounds.
    pub fn min_dot(&self) -> f64 {
        self.radius_deg.to_radians().cos() - 1e-15
    }

    /// Whether a direction is inside the cone (rim included).
    pub fn contains(&self, point: &UnitVector) -> bool {
        self.centre.dot(point) >= self.min_dot()
    }

    /// The box in (x, y, z) that holds the cone.
    ///
    /// Along an axis `e` a direction's coordinate is the cosine of its angle to `e`. The centre
    /// is at angle θ from `e`, so every direction in the cone is between θ - r and θ + r from it,
    /// clamped to [0, π]: the coordinate lies between the cosines of those clamped angles.
    pub fn bounding_box(&self) -> Box3 {
        let r = self.radius_deg.to_radians();
        let range = |component: f64| {
            let theta = component.clamp(-1.0, 1.0).acos();
            let near = (theta - r).max(0.0);
            let far = (theta + r).min(std::f64::consts::PI);
            // A little slack keeps the rim inside despite rounding in cos and acos.
            (far.cos() - 1e-9, near.cos() + 1e-9)
        };
        Box3 {
            x: range(self.centre.x),
            y: range(self.centre.y),
            z: range(self.centre.z),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inside_box(b: &Box3, p: &UnitVector) -> bool {
        (b.x.0..=b.x.1).contains(&p.x)
            && (b.y.0..=b.y.1).contains(&p.y)
            && (b.z.0..=b.z.1).contains(&p.z)
    }

    #[test]
    fn cone_across_ra_zero_holds_both_sides() {
        let cone = SkyCone::new(359.9, 10.0, 0.5).expect("valid cone");
        assert!(cone.contains(&UnitVector::from_radec(0.2, 10.0)));
        assert!(cone.contains(&UnitVector::from_radec(359.6, 10.1)));
        assert!(!cone.contains(&UnitVector::from_radec(1.0, 10.0)));
    }

    #[test]
    fn cone_at_the_pole_holds_every_ra() {
        let cone = SkyCone::new(0.0, 89.5, 2.0).expect("valid cone");
        for ra in [0.0, 90.0, 180.0, 270.0, 359.0] {
            assert!(cone.contains(&UnitVector::from_radec(ra, 89.0)), "ra {ra}");
        }
        assert!(!cone.contains(&UnitVector::from_radec(180.0, 88.0)));
    }

    #[test]
    fn bad_cones_are_refused() {
        assert_eq!(SkyCone::new(10.0, 91.0, 1.0), Err(SkyError::Dec(91.0)));
        assert_eq!(SkyCone::new(10.0, 0.0, 0.0), Err(SkyError::Radius(0.0)));
        assert_eq!(SkyCone::new(10.0, 0.0, 181.0), Err(SkyError::Radius(181.0)));
        assert!(matches!(
            SkyCone::new(f64::NAN, 0.0, 1.0),
            Err(SkyError::Ra(_))
        ));
    }

    #[test]
    fn separation_matches_known_values() {
        let a = UnitVector::from_radec(0.0, 0.0);
        assert!((a.separation_deg(&UnitVector::from_radec(90.0, 0.0)) - 90.0).abs() < 1e-9);
        assert!((a.separation_deg(&UnitVector::from_radec(359.0, 0.0)) - 1.0).abs() < 1e-9);
        assert!(normalise_ra(-0.5) > 359.0 && normalise_ra(720.25) == 0.25);
    }

    proptest! {
        /// Every point inside a cone is inside its box, so the index never loses a match.
        #[test]
        fn box_holds_every_point_of_its_cone(
            ra in 0.0f64..360.0, dec in -90.0f64..=90.0, radius in 0.0001f64..180.0,
            bearing in 0.0f64..360.0, fraction in 0.0f64..=1.0,
        ) {
            let cone = SkyCone::new(ra, dec, radius).expect("valid cone");
            // A point at `fraction` of the radius along `bearing` from the centre.
            let d = (radius * fraction).to_radians();
            let (ra0, dec0, b) = (ra.to_radians(), dec.to_radians(), bearing.to_radians());
            let dec1 = (dec0.sin() * d.cos() + dec0.cos() * d.sin() * b.cos()).clamp(-1.0, 1.0).asin();
            let ra1 = ra0 + (b.sin() * d.sin() * dec0.cos()).atan2(d.cos() - dec0.sin() * dec1.sin());
            let p = UnitVector::from_radec(ra1.to_degrees(), dec1.to_degrees());
            prop_assert!(inside_box(&cone.bounding_box(), &p));
            if fraction < 0.999 {
                prop_assert!(cone.contains(&p));
            }
        }
    }
}
