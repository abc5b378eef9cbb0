// Shapes of one max-pooling layer (NCHW, no padding, floor mode): the window
// (spatial_window) and the planes it slides over, pipeline constants too.

#import spatial_window

// Batch x channels.
override PLANES: u32 = 1u;

// Both pooling kernels walk their pixels (plane_walk) in OUT_H x OUT_W or IN_H x IN_W planes.
#import plane_walk
