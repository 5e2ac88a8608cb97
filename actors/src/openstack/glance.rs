//! Listing one region's active images (Glance v2).

use std::sync::Arc;

use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::error::ProviderError;
use super::nova::{endpoint_of, join};
use super::session::Session;

/// Most pages followed in one listing.
const MAX_PAGES: usize = 100;

/// An image as Glance lists it; only the fields profiles resolve against.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Image {
    /// Image id, used as `imageRef`.
    pub id: String,
    /// Image name; Glance allows none.
    #[serde(default)]
    pub name: Option<String>,
    /// `active` for usable images.
    #[serde(default)]
    pub status: String,
    /// Smallest flavor RAM the image needs, MiB.
    #[serde(default)]
    pub min_ram: u64,
    /// Smallest flavor disk the image needs, GB.
    #[serde(default)]
    pub min_disk: u64,
}

/// One account-region's image API.
#[derive(Debug, Clone)]
pub struct ImageClient {
    session: Arc<Session>,
    endpoint: Url,
}

impl ImageClient {
    /// Finds the region's image endpoint in the catalog.
    pub async fn connect(
        session: Arc<Session>,
        region: &str,
    ) -> Result<ImageClient, ProviderError> {
        let endpoint = endpoint_of(&session, "image", region).await?;
        Ok(ImageClient { session, endpoint })
    }

    /// Active images, optionally only those named exactly `name`.
    pub async fn active_images(&self, name: Option<&str>) -> Result<Vec<Image>, ProviderError> {
        #[derive(Deserialize)]
        struct Page {
            images: Vec<Image>,
            #[serde(default)]
            next: Option<String>,
        }
        let mut url = self.versioned_base();
        url.query_pairs_mut().append_pair("status", "active");
        if let Some(name) = name {
            url.query_pairs_mut().append_pair("name", name);
        }
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self
                .session
                .send(|_| self.session.client().request(Method::GET, url.clone()))
                .await?;
            let page: Page = answer.json()?;
            all.extend(page.images.into_iter().filter(|i| i.status == "active"));
            match page.next.and_then(|next| self.resolve(&next)) {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(all)
    }

    /// `<endpoint>/v2/images`, whether or not the catalog URL has `/v2`.
    fn versioned_base(&self) -> Url {
        let has_version = self
            .endpoint
            .path_segments()
            .and_then(|mut s| s.rfind(|seg| !seg.is_empty()))
            .is_some_and(|last| last == "v2");
        if has_version {
            join(&self.endpoint, &["images"])
        } else {
            join(&self.endpoint, &["v2", "images"])
        }
    }

    /// Glance's `next` is a path from its root (`/v2/images?marker=...`).
    fn resolve(&self, next: &str) -> Option<Url> {
        let root = self
            .endpoint
            .path()
            .trim_end_matches('/')
            .trim_end_matches("/v2");
        let mut url = self.endpoint.clone();
        let (path, query) = next.split_once('?').unwrap_or((next, ""));
        url.set_path(&format!("{root}{path}"));
        url.set_query((!query.is_empty()).then_some(query));
        Some(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_image_list_parses() {
        let body: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/008-images.json")).unwrap();
        let images: Vec<Image> = serde_json::from_value(body["images"].clone()).unwrap();
        assert_eq!(images[0].name.as_deref(), Some("cirros-fake"));
        assert_eq!(images[0].status, "active");
    }
}
