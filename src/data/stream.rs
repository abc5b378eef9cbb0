//! A face set read from its files or pack as batches need it: a [`StreamedSet`] holds,
//! for each image of a split, its position in the [`ImageSource`] and its label, and
//! decodes the image with the run's [`Preprocessing`] on each read.

use std::sync::Arc;

use super::{Dataset, ImageSource, ImageStore, Preprocessing};
use crate::{Error, Result};

/// Images of an [`ImageSource`], decoded on each read.
#[derive(Clone)]
pub struct StreamedSet {
    source: Arc<ImageSource>,
    preprocessing: Preprocessing,
    items: Vec<usize>,
    labels: Vec<u32>,
}

impl StreamedSet {
    /// The images a split of a skeleton names ([`super::folder::ImageFolder::skeleton`]:
    /// each image's value is its position in `source`), with the skeleton's labels.
    pub fn from_skeleton(source: Arc<ImageSource>, preprocessing: Preprocessing, skeleton: &Dataset<u32>) -> Self {
        let items = skeleton.images.iter().map(|&position| position as usize).collect();
        Self { source, preprocessing, items, labels: skeleton.labels.clone() }
    }

    /// The labels, image by image.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The source.
    pub fn source(&self) -> &ImageSource {
        &self.source
    }
}

impl ImageStore for StreamedSet {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn shape(&self) -> [usize; 3] {
        self.preprocessing.input
    }

    fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }

    fn load_into(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let item = self.items[i];
        let pixels = self.source.load(item, &self.preprocessing).map_err(|why| {
            Error::Data(format!(
                "{} does not decode while streaming: {why} (the up-front check reads only image headers; remove or repair the file)",
                self.source.name(item).display()
            ))
        })?;
        out.copy_from_slice(&pixels);
        Ok(())
    }
}
