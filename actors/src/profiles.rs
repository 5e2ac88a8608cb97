//! Turning a provider-independent profile into a flavor and an image of
//! one account-region: the smallest flavor that satisfies it and the image
//! of that name, unless the account pins names.

use crate::model::{Pin, Profile};
use crate::openstack::{Flavor, Image};
use crate::status::FlavorShape;

/// The name of the profile a launch with explicit minima and an image
/// gets: the same shape, the same name.
pub fn ad_hoc_name(shape: &Profile) -> String {
    use sha2::{Digest, Sha256};
    let key = format!(
        "{}:{}:{}:{}",
        shape.min_vcpus, shape.min_ram_mb, shape.min_disk_gb, shape.image
    );
    let digest: String = Sha256::digest(key.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("custom-{digest}")
}

/// The concrete choice for one account-region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The flavor.
    pub flavor: Flavor,
    /// The image.
    pub image: Image,
}

/// Picks the flavor and image, or says why none fits.
pub fn resolve(
    profile: &Profile,
    flavors: &[Flavor],
    images: &[Image],
    pin: Option<&Pin>,
) -> Result<Resolved, String> {
    let pinned_flavor = pin.and_then(|p| p.flavor.as_deref());
    let flavor = match pinned_flavor {
        Some(name) => flavors
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("pinned flavor {name} not found"))?,
        None => flavors
            .iter()
            .filter(|f| FlavorShape::from(*f).fits(profile))
            .min_by_key(|f| (f.ram, f.vcpus, f.disk, f.name.clone()))
            .ok_or_else(|| {
                format!(
                    "no flavor with at least {} vCPU, {} MiB RAM, {} GB disk",
                    profile.min_vcpus, profile.min_ram_mb, profile.min_disk_gb
                )
            })?,
    };
    let image_name = pin
        .and_then(|p| p.image.as_deref())
        .unwrap_or(&profile.image);
    let image = images
        .iter()
        .find(|i| i.name.as_deref() == Some(image_name) && i.status == "active")
        .ok_or_else(|| format!("no active image named {image_name}"))?;
    Ok(Resolved {
        flavor: flavor.clone(),
        image: image.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(name: &str, vcpus: u32, ram: u64, disk: u64) -> Flavor {
        Flavor {
            id: name.into(),
            name: name.into(),
            vcpus,
            ram,
            disk,
            ephemeral: 0,
            is_public: true,
        }
    }

    fn image(name: &str) -> Image {
        Image {
            id: format!("id-{name}"),
            name: Some(name.into()),
            status: "active".into(),
            min_ram: 0,
            min_disk: 0,
        }
    }

    fn small() -> Profile {
        Profile {
            name: "small".into(),
            min_vcpus: 1,
            min_ram_mb: 1024,
            min_disk_gb: 10,
            image: "debian-12".into(),
            boot_timeout_secs: 600,
        }
    }

    #[test]
    fn picks_the_smallest_flavor_that_fits() {
        let flavors = [
            flavor("m1.tiny", 1, 512, 1),
            flavor("m1.large", 4, 8192, 80),
            flavor("m1.small", 1, 2048, 20),
            flavor("m1.medium", 2, 4096, 40),
        ];
        let resolved = resolve(&small(), &flavors, &[image("debian-12")], None).unwrap();
        assert_eq!(resolved.flavor.name, "m1.small");
        assert_eq!(resolved.image.id, "id-debian-12");
    }

    #[test]
    fn says_why_nothing_fits() {
        let error = resolve(
            &small(),
            &[flavor("m1.tiny", 1, 512, 1)],
            &[image("debian-12")],
            None,
        )
        .unwrap_err();
        assert!(error.contains("no flavor"), "{error}");
        let error = resolve(
            &small(),
            &[flavor("m1.small", 1, 2048, 20)],
            &[image("ubuntu")],
            None,
        )
        .unwrap_err();
        assert!(error.contains("debian-12"), "{error}");
    }

    #[test]
    fn pinned_names_win() {
        let flavors = [flavor("m1.small", 1, 2048, 20), flavor("gp.2", 2, 4096, 50)];
        let pin = Pin {
            flavor: Some("gp.2".into()),
            image: Some("Debian 12 (official)".into()),
        };
        let resolved = resolve(
            &small(),
            &flavors,
            &[image("Debian 12 (official)")],
            Some(&pin),
        )
        .unwrap();
        assert_eq!(resolved.flavor.name, "gp.2");
        assert_eq!(resolved.image.name.as_deref(), Some("Debian 12 (official)"));
    }
}

#[cfg(test)]
mod fit_tests {
    use super::*;

    #[test]
    fn a_profile_fits_only_a_flavor_that_meets_every_minimum() {
        let profile = Profile {
            name: "p".into(),
            min_vcpus: 4,
            min_ram_mb: 8192,
            min_disk_gb: 40,
            image: "i".into(),
            boot_timeout_secs: 600,
        };
        let shape = |vcpus, ram_mb, disk_gb| FlavorShape {
            vcpus,
            ram_mb,
            disk_gb,
        };
        // Each flavor is big enough in two of three dimensions.
        for near in [shape(8, 4096, 80), shape(2, 16384, 80), shape(8, 16384, 20)] {
            assert!(!near.fits(&profile), "{near:?}");
        }
        assert!(shape(4, 8192, 40).fits(&profile));
    }
}
