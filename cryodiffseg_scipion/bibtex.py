"""
@article{Gandhi2025,
  title = {Unsupervised Multi-scale Segmentation of Cellular Cryo-electron Tomograms with Stable Diffusion Foundation Model},
  author = {Gandhi, K. and Nguyen, T.-H. and Tabib, H. M. S. and Uddin, M. R. and Xu, M.},
  journal = {bioRxiv},
  year = {2025},
  pages = {2025.06.25.661425},
  doi = {10.1101/2025.06.25.661425},
  url = {https://doi.org/10.1101/2025.06.25.661425}
}

@inproceedings{Rombach2022,
  title = {High-Resolution Image Synthesis with Latent Diffusion Models},
  author = {Rombach, Robin and Blattmann, Andreas and Lorenz, Dominik and Esser, Patrick and Ommer, Bj{\"o}rn},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year = {2022},
  pages = {10684--10695},
  doi = {10.1109/CVPR52688.2022.01042},
  url = {https://doi.org/10.1109/CVPR52688.2022.01042}
}

@article{Stringer2021,
  title = {Cellpose: a generalist algorithm for cellular segmentation},
  author = {Stringer, Carsen and Wang, Tim and Michaelos, Michalis and Pachitariu, Marius},
  journal = {Nature Methods},
  volume = {18},
  number = {1},
  pages = {100--106},
  year = {2021},
  doi = {10.1038/s41592-020-01018-x},
  url = {https://doi.org/10.1038/s41592-020-01018-x}
}

@inproceedings{Ronneberger2015,
  title = {U-Net: Convolutional Networks for Biomedical Image Segmentation},
  author = {Ronneberger, Olaf and Fischer, Philipp and Brox, Thomas},
  booktitle = {Medical Image Computing and Computer-Assisted Intervention (MICCAI 2015)},
  series = {Lecture Notes in Computer Science},
  volume = {9351},
  pages = {234--241},
  year = {2015},
  publisher = {Springer},
  doi = {10.1007/978-3-319-24574-4_28},
  url = {https://doi.org/10.1007/978-3-319-24574-4_28}
}
"""
