#!/usr/bin/python3
"""make bench's PyTorch counterpart of the detector row: builds the convolution stack of a
Darknet detector cfg ([convolutional] with batch-norm and activation, [maxpool] incl.
size=2 stride=1, [route], [upsample], [shortcut]; [yolo] marks an output) in PyTorch and
times its training step the way bench/det.c does (2 untimed steps, then the median of up
to --reps steps, stopping after --budget seconds); with --serve, bench/det.c asks for one
step at a time and interleaves them with its own.  [yolo]'s loss is replaced by a
squared-error loss on the maps the [yolo] layers read: the time is in the convolutions.
Exits 3 when PyTorch is not installed.
"""
import argparse
import sys
import time


def read_cfg(path):
    """[(section, {key: value})] in file order; '#' and ';' start comments."""
    sections = []
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.split('#')[0].split(';')[0].strip()
            if not line:
                continue
            if line.startswith('['):
                if not line.endswith(']'):
                    raise ValueError('%s:%d: bad section line %r' % (path, n, line))
                sections.append((line[1:-1], {}))
            elif '=' in line and sections:
                k, v = line.split('=', 1)
                sections[-1][1][k.strip()] = v.strip()
            else:
                raise ValueError('%s:%d: not key=value: %r' % (path, n, line))
    if not sections or sections[0][0] not in ('net', 'network'):
        raise ValueError('%s: the first section must be [net]' % path)
    return sections


def build(torch, sections):
    """(modules, specs, out shapes, forward FLOPs per image of the convolutions)."""
    nn = torch.nn
    net = sections[0][1]
    c, h, w = int(net.get('channels', 3)), int(net['height']), int(net['width'])
    mods, specs, shapes, flops = nn.ModuleList(), [], [], 0.0
    acts = {'leaky': lambda: nn.LeakyReLU(0.1), 'linear': nn.Identity, 'logistic': nn.Sigmoid, 'relu': nn.ReLU}
    for i, (kind, o) in enumerate(sections[1:]):
        m, spec = nn.Identity(), (kind,)
        if kind == 'convolutional':
            f, k, s = int(o['filters']), int(o.get('size', 1)), int(o.get('stride', 1))
            p = k // 2 if int(o.get('pad', 0)) else int(o.get('padding', 0))
            bn = int(o.get('batch_normalize', 0))
            seq = [nn.Conv2d(c, f, k, s, p, bias=not bn)] + ([nn.BatchNorm2d(f)] if bn else [])
            seq.append(acts[o.get('activation', 'logistic')]())
            m = nn.Sequential(*seq)
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            flops += 2.0 * h * w * f * k * k * c
            c = f
        elif kind == 'maxpool':
            s = int(o.get('stride', 1))
            k = int(o.get('size', s))
            p = int(o.get('padding', k - 1))
            oh, ow = (h + p - k) // s + 1, (w + p - k) // s + 1
            # Darknet's window starts at i*stride - p/2; cells outside the image never win
            left = p // 2
            pad = (left, (ow - 1) * s + k - w - left, left, (oh - 1) * s + k - h - left)
            spec = ('maxpool', pad)
            m = nn.MaxPool2d(k, s)
            h, w = oh, ow
        elif kind == 'upsample':
            s = int(o.get('stride', 2))
            m = nn.Upsample(scale_factor=s, mode='nearest')
            h, w = h * s, w * s
        elif kind == 'route':
            src = [int(x) for x in o['layers'].split(',')]
            src = [x + i if x < 0 else x for x in src]
            spec = ('route', src)
            c, h, w = sum(shapes[x][0] for x in src), shapes[src[0]][1], shapes[src[0]][2]
        elif kind == 'shortcut':
            src = int(o['from'])
            spec = ('shortcut', src + i if src < 0 else src)
            m = acts[o.get('activation', 'linear')]()
        elif kind != 'yolo':
            raise ValueError('section [%s] is not supported' % kind)
        mods.append(m)
        specs.append(spec)
        shapes.append((c, h, w))
    return mods, specs, shapes, flops


def forward(torch, mods, specs, x):
    """The [yolo] layers' inputs (what the loss is computed on)."""
    outs, heads = [], []
    F = torch.nn.functional
    for m, spec in zip(mods, specs):
        kind = spec[0]
        if kind == 'maxpool':
            x = m(F.pad(x, spec[1], value=float('-inf')))
        elif kind == 'route':
            x = torch.cat([outs[j] for j in spec[1]], 1) if len(spec[1]) > 1 else outs[spec[1][0]]
        elif kind == 'shortcut':
            x = m(x + outs[spec[1]])
        elif kind == 'yolo':
            heads.append(x)
        else:
            x = m(x)
        outs.append(x)
    return heads


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--cfg', required=True)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--reps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--budget', type=float, default=5.0)
    ap.add_argument('--serve', action='store_true',
                    help='for bench/det.c: after the untimed steps print "ready ...", then run one step per '
                         '"step" line on stdin, answering "t WALL CPU" (seconds)')
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print('torch_det.py: skipped: python3-torch not installed', file=sys.stderr)
        return 3
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    sections = read_cfg(a.cfg)
    net = sections[0][1]
    batch = int(net['batch']) // int(net.get('subdivisions', 1))
    mods, specs, shapes, flops = build(torch, sections)
    mods.train()
    heads = [shapes[i - 1] for i, s in enumerate(specs) if s[0] == 'yolo']
    if not heads:
        raise ValueError('%s: no [yolo] layer' % a.cfg)
    x = torch.rand(batch, int(net.get('channels', 3)), int(net['height']), int(net['width']))
    targets = [torch.rand(batch, *s) for s in heads]
    opt = torch.optim.SGD(mods.parameters(), lr=1e-4, momentum=float(net.get('momentum', 0.9)),
                          weight_decay=float(net.get('decay', 0.0005)))

    def step():
        opt.zero_grad()
        loss = sum(0.5 * ((y - t) ** 2).mean() for y, t in zip(forward(torch, mods, specs, x), targets))
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    print('torch_det: %d threads, batch %d, %dx%d, %d parameters, %.3f GFLOP/img per step' %
          (torch.get_num_threads(), batch, int(net['height']), int(net['width']),
           sum(p.numel() for p in mods.parameters()), 3 * flops / 1e9), file=sys.stderr)
    if a.serve:
        print('ready gflop %.17g torch %s' % (3 * flops / 1e9, torch.__version__), flush=True)
        for line in sys.stdin:
            if line.strip() != 'step':
                raise ValueError('expected "step", got %r' % line)
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            print('t %.6f %.6f' % (time.perf_counter() - t0, time.process_time() - c0), flush=True)
        return 0
    times, start, c0 = [], time.perf_counter(), time.process_time()
    while len(times) < a.reps:
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if len(times) >= 2 and t1 - start > a.budget:
            break
    cpu = (time.process_time() - c0) / len(times)
    times.sort()
    n = len(times)
    med = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    print('torch_det: median %.6f best %.6f cpu %.6f n %d gflop %.17g torch %s' %
          (med, times[0], cpu, n, 3 * flops / 1e9, torch.__version__))
    return 0


if __name__ == '__main__':
    sys.exit(main())
