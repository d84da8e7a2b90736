/* Declarations of symbols that libdarknet exports but darknet.h does not declare.
 * Internal to the plugin; layouts mirror the packaged library (see DARKNET-NOTES.md). */
#ifndef LWF_DN_H
#define LWF_DN_H

#include <darknet.h>

/* parser.c's option entry: the options list of a section holds kvp*. */
typedef struct {
    char *key;
    char *val;
    int used;
} dn_kvp;

/* parser.c's size_params, field for field. */
typedef struct {
    int batch;
    int inputs;
    int h;
    int w;
    int c;
    int index;
    int time_steps;
    network *net;
} dn_size_params;

list *make_list(void);
void list_insert(list *l, void *val);

void parse_net_options(list *options, network *net);
network *make_network(int n);

layer parse_convolutional(list *options, dn_size_params params);
layer parse_connected(list *options, dn_size_params params);
layer parse_maxpool(list *options, dn_size_params params);
layer parse_avgpool(list *options, dn_size_params params);
layer parse_dropout(list *options, dn_size_params params);
layer parse_batchnorm(list *options, dn_size_params params);
layer parse_softmax(list *options, dn_size_params params);
layer parse_activation(list *options, dn_size_params params);
layer parse_crop(list *options, dn_size_params params);
layer parse_normalization(list *options, dn_size_params params);
layer parse_reorg(list *options, dn_size_params params);
layer parse_route(list *options, dn_size_params params, network *net);
layer parse_shortcut(list *options, dn_size_params params, network *net);
layer parse_upsample(list *options, dn_size_params params, network *net);
layer parse_yolo(list *options, dn_size_params params);

layer make_route_layer(int batch, int n, int *input_layers, int *input_sizes);
layer make_convolutional_layer(int batch, int h, int w, int c, int n, int groups, int size, int stride, int padding,
                               ACTIVATION activation, int batch_normalize, int binary, int xnor, int adam);
layer make_maxpool_layer(int batch, int h, int w, int c, int size, int stride, int padding);
layer make_avgpool_layer(int batch, int w, int h, int c);
void forward_convolutional_layer(layer l, network net);
void backward_convolutional_layer(layer l, network net);
void forward_maxpool_layer(layer l, network net);
void backward_maxpool_layer(layer l, network net);
void forward_avgpool_layer(layer l, network net);
void backward_avgpool_layer(layer l, network net);
layer make_dropout_layer(int batch, int inputs, float probability);
void forward_route_layer(layer l, network net);
void backward_route_layer(layer l, network net);
layer make_softmax_layer(int batch, int inputs, int groups);
layer make_yolo_layer(int batch, int w, int h, int n, int total, int *mask, int classes);
void forward_yolo_layer(const layer l, network net);
void backward_yolo_layer(const layer l, network net);
box get_yolo_box(float *x, float *biases, int n, int index, int i, int j, int lw, int lh, int w, int h, int stride);
float delta_yolo_box(box truth, float *x, float *biases, int n, int index, int i, int j, int lw, int lh, int w, int h,
                     float *delta, float scale, int stride);
void delta_yolo_class(float *output, float *delta, int index, int cls, int classes, int stride, float *avg_cat);

void softmax_cpu(float *input, int n, int batch, int batch_offset, int groups,
                 int group_offset, int stride, float temp, float *output);
float calc_network_cost(network *net);
image rotate_crop_image(image im, float rad, float s, int w, int h, float dx, float dy, float aspect);
void distort_image(image im, float hue, float sat, float val);
void place_image(image im, int w, int h, int dx, int dy, image canvas);
float option_find_float_quiet(list *l, char *key, float def);

/* gemm.c's entry points: plugin/runtime/blas.c defines both (the executable's definitions
 * replace libdarknet's). */
void gemm(int TA, int TB, int M, int N, int K, float ALPHA, float *A, int lda, float *B, int ldb, float BETA, float *C,
          int ldc);
void gemm_cpu(int TA, int TB, int M, int N, int K, float ALPHA, float *A, int lda, float *B, int ldb, float BETA,
              float *C, int ldc);

#endif
